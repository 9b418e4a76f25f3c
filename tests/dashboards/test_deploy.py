"""docker-compose.yml, its Prometheus and Grafana provisioning, and the Kubernetes manifests, validated
offline: no Docker engine or cluster runs here, so each file is checked against its schema and against
what LMP needs (privileges, mounts, the generated dashboards and rules, one port per collector)."""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path

import bcrypt
import jsonschema
import pytest
from ruamel.yaml import YAML

from exporters._lib import catalog, paths, webconfig
from lmp import config as configs
from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
yaml = YAML(typ="safe")


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.load_all(path.read_text()) if doc]


def tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / ".venv" / "bin" / args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def promtool_syntax(text: str) -> subprocess.CompletedProcess:
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
        f.write(text)
        f.flush()
        return subprocess.run(["promtool", "check", "config", "--syntax-only", f.name], capture_output=True,
                              text=True, timeout=60)


def test_compose_file_is_valid_by_the_compose_specification():
    result = tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_lmp_service_sees_the_host_kernel():
    lmp = yaml.load(COMPOSE.read_text())["services"]["lmp"]
    assert lmp["privileged"] is True and lmp["pid"] == "host"
    mounted = {v.split(":")[0]: v.split(":")[1] for v in lmp["volumes"]}
    for path in ("/sys/kernel/tracing", "/sys/kernel/debug", "/sys/fs/bpf", "/sys/fs/cgroup"):
        assert path in mounted, path
    # CO-RE objects: no kernel headers from the host, and no compiler in the image that runs them.
    assert "/lib/modules" not in mounted and "/usr/src" not in mounted
    assert lmp["command"] == ["lmp", "run", "--no-prometheus"]


def test_the_image_builds_its_objects_in_a_stage_that_does_not_ship():
    stages = re.split(r"^FROM ", (ROOT / "Dockerfile").read_text(), flags=re.M)[1:]
    assert len(stages) == 2 and stages[0].startswith("debian:12-slim AS build")
    build, image = stages
    assert "clang" in build and "lmp build" in build
    assert "COPY --from=build /opt/lmp /opt/lmp" in image
    assert not re.search(r"\b(clang|llvm|libbpf-dev|linux-headers)\b", image.split("\n", 1)[1])


def test_every_file_compose_mounts_exists_and_prometheus_gets_the_generated_rules():
    services = yaml.load(COMPOSE.read_text())["services"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    prometheus = services["prometheus"]["volumes"]
    assert f"./{paths.ALERT_RULES.relative_to(ROOT)}:/etc/prometheus/rules/lmp.rules.yml:ro" in prometheus
    grafana = services["grafana"]["volumes"]
    assert f"./{paths.GRAFANA_DIR.relative_to(ROOT)}:/var/lib/grafana/dashboards/lmp:ro" in grafana


def test_compose_prometheus_config_is_valid_and_discovers_through_the_admin():
    path = DEPLOY / "compose" / "prometheus.yml"
    result = promtool_syntax(path.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    job = yaml.load(path.read_text())["scrape_configs"][0]
    sd = job["http_sd_configs"][0]
    assert sd["url"].endswith("/api/v1/sd") and sd["authorization"]["type"] == "Bearer"
    assert job["job_name"] == "lmp" and job["honor_labels"] is True


def test_grafana_provisioning_files_match_their_schema():
    schema = json.loads((Path(__file__).parent / "grafana_provisioning.schema.json").read_text())
    files = sorted((DEPLOY / "compose" / "grafana" / "provisioning").rglob("*.yaml"))
    assert len(files) == 2
    for path in files:
        jsonschema.validate(yaml.load(path.read_text()), schema)
    provider = yaml.load((DEPLOY / "compose/grafana/provisioning/dashboards/lmp.yaml").read_text())["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/lmp"  # where compose mounts them
    bad = {"apiVersion": 1, "providers": [{"name": "x", "type": "file", "options": {"pth": "/x"}}]}
    with pytest.raises(jsonschema.ValidationError):  # a misspelt key does not get through
        jsonschema.validate(bad, schema)


def test_kubernetes_manifests_validate():
    result = tool("kubernetes-validate", "--strict", str(DEPLOY / "kubernetes" / "lmp.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == 4


def test_kubernetes_config_covers_every_collector_and_the_pod_exposes_each_port(tmp_path):
    docs = {doc["kind"]: doc for doc in load_all(DEPLOY / "kubernetes" / "lmp.yaml")}
    config_file = tmp_path / "lmp.yaml"
    config_file.write_text(docs["ConfigMap"]["data"]["lmp.yaml"].replace("/etc/lmp-web/web.yml", "web/web.yml"))
    web = filled_web_secret(docs["Secret"], tmp_path / "web")
    cfg = configs.load(config_file)  # the same checks as any LMP config: schema, specs, ports, the web config
    assert cfg.web_config == str(web)
    collectors = {n for n in catalog.names() if catalog.load(n).kind == "collector"}
    assert collectors <= set(cfg.collectors)
    assert not cfg.admin.enabled and not cfg.prometheus.enabled
    pod = docs["DaemonSet"]["spec"]["template"]["spec"]
    assert pod["hostPID"] and pod["hostNetwork"]
    container = pod["containers"][0]
    assert container["securityContext"]["privileged"] is True
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for name, c in cfg.collectors.items():
        assert c.listen.startswith("0.0.0.0:")
        assert ports[f"lmp-{name}"] == int(c.listen.rsplit(":", 1)[1])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/sys/kernel/tracing", "/sys/kernel/debug", "/sys/fs/bpf", "/sys/fs/cgroup", "/etc/lmp-web"} <= mounts
    assert {"name": "web", "secret": {"secretName": "lmp-web", "defaultMode": 0o400}} in pod["volumes"]
    assert not {"/host/lib/modules", "/usr/src"} & mounts  # CO-RE objects: no headers from the node


def filled_web_secret(secret: dict, directory: Path) -> Path:
    """The Secret's files, as an operator fills them in (docs/fleet.md): a certificate naming `lmp`, a hash."""
    directory.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=lmp", "-addext", "subjectAltName=DNS:lmp", "-keyout",
                    str(directory / "tls.key"), "-out", str(directory / "tls.crt")], check=True, capture_output=True)
    placeholder = "REPLACE-WITH-A-BCRYPT-HASH"
    text = secret["stringData"]["web.yml"]
    assert placeholder in text  # no usable password ships in the manifest
    with pytest.raises(ValueError, match="not a bcrypt hash"):  # left as shipped, it stops the pod with a reason
        (directory / "web.yml").write_text(text)
        webconfig.load(directory / "web.yml")
    hashed = bcrypt.hashpw(b"a-fleet-password", bcrypt.gensalt(rounds=4)).decode()
    (directory / "web.yml").write_text(text.replace(placeholder, hashed))
    return directory / "web.yml"


def test_kubernetes_scrape_config_relabels_as_make_run_labels():
    """Debian's promtool is built without Kubernetes discovery, so the scrape config is checked by promtool
    with that one block swapped for a static one, and the block itself by hand."""
    text = (DEPLOY / "kubernetes" / "prometheus.yml").read_text()
    job = yaml.load(text)["scrape_configs"][0]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["lmp"]}}]
    swapped = re.sub(r"    kubernetes_sd_configs:\n(      .*\n)+", "    static_configs:\n      - targets: ['node:9451']\n",
                     text).replace("lmp.rules.yml", str(paths.ALERT_RULES))
    result = promtool_syntax(swapped)
    assert result.returncode == 0, result.stdout + result.stderr
    assert job["scheme"] == "https" and job["tls_config"]["server_name"] == "lmp"
    assert job["basic_auth"]["username"] == "prometheus"
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"collector", "instance"} <= targets and job["job_name"] == "lmp"
