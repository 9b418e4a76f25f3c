"""A newcomer adds a collector as the README's "Adding a collector" says, and only so: in a copy of the
repository, copy a collector's folder under a new name, rename it, generate. Then everything takes it
with no other file edited by hand: `lmp list`, its exporter, the admin's catalog and enable, the
generated files and their tests, the conformance and real-Prometheus dashboard tests, `lmp bench` and the
docs site."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exporters._lib import catalog
from testkit import free_port, wait_for
from tests.conftest import ROOT, programs_left, programs_of
from tests.lmprun import Api

NEW, MODEL = "waits", "runqlat"  # a histogram collector, copied
# The renames: the collector's name, its metric (and map, and the alert's threshold), its alert (and the
# alert's runbook anchor).
RENAMES = [(MODEL, NEW), ("runqueue_latency", "waits_latency"), ("RunqueueLatency", "WaitsLatency"),
           ("runqueuelatency", "waitslatency")]


def python(copy: Path, *args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """The project's interpreter, run in the copy: `-m` puts the copy first on the import path."""
    return subprocess.run([sys.executable, *args], cwd=copy, capture_output=True, text=True, timeout=timeout, **kw)


def lmp(copy: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return python(copy, "-m", "lmp", *args, **kw)


def fresh_copy(target: Path) -> Path:
    """What a clone holds (git's files), with the built objects, so that only what changes is rebuilt."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    built = [p.relative_to(ROOT) for pattern in ("*.bpf.o", "*.bpf.d") for p in ROOT.rglob(pattern)
             if ".venv" not in p.parts and "node_modules" not in p.parts]
    for rel in [Path(f) for f in listed.stdout.split("\0") if f] + built:
        if (ROOT / rel).is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, target / rel)
    (target / "admin" / "node_modules").symlink_to(ROOT / "admin" / "node_modules")  # npm's, as installed
    (target / ".venv").symlink_to(ROOT / ".venv")  # the tools the tests call by path (kubernetes-validate ...)
    return target


def copy_rename(copy: Path) -> int:
    """Steps 1 and 2 of the checklist: the folder copied without its build products, its files renamed,
    its name, port, metric, map and alert names changed. Returns the port chosen."""
    source, folder = copy / "exporters" / MODEL, copy / "exporters" / NEW
    folder.mkdir()
    port = 1 + max(catalog.load(name).port for name in catalog.names())
    for path in source.iterdir():
        if path.suffix in (".o", ".d"):
            continue
        text = path.read_text()
        for old, new in RENAMES:
            text = text.replace(old, new)
        text = re.sub(r"^port: \d+", f"port: {port}", text, flags=re.M)
        (folder / path.name.replace(MODEL, NEW)).write_text(text)
    return port


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    copy = fresh_copy(tmp_path_factory.mktemp("newcomer") / "lmp")
    port = copy_rename(copy)
    built = lmp(copy, "build", NEW)  # step 3: generate
    assert built.returncode == 0, built.stderr
    generated = lmp(copy, "dashboards", "build")
    assert generated.returncode == 0, generated.stderr
    copy.joinpath(".port").write_text(str(port))
    return copy


def test_generating_writes_everything_that_lists_collectors(copy):
    port = int(copy.joinpath(".port").read_text())
    assert "alert: LmpWaitsLatencyHigh" in (copy / "dashboards" / "prometheus" / "lmp.rules.yml").read_text()
    assert "alertname: LmpWaitsLatencyHigh" in (copy / "dashboards" / "prometheus" / "lmp.rules.test.yml").read_text()
    assert "## LmpWaitsLatencyHigh" in (copy / "docs" / "runbook.md").read_text()
    assert (copy / "dashboards" / "grafana" / f"lmp-{NEW}.json").is_file()
    assert "lmp_waits_latency_seconds" in (copy / "docs" / "metrics.md").read_text()
    assert f"| [{NEW}](exporters/{NEW}/README.md) |" in (copy / "README.md").read_text()
    assert f"{{name: lmp-{NEW}, containerPort: {port}, protocol: TCP}}" in (
        copy / "deploy" / "kubernetes" / "lmp.yaml").read_text()
    changed = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    assert f"exporters/{NEW}" not in changed  # the copy, never the repository


def test_lmp_list_and_the_config_take_it_at_its_port(copy):
    port = int(copy.joinpath(".port").read_text())
    rows = json.loads(lmp(copy, "list", "--json").stdout)
    row = next(r for r in rows if r["name"] == NEW)
    assert row["listen"] == f"127.0.0.1:{port}" and row["enabled"] and row["can_run"], row


def test_the_projects_own_checks_pass_on_the_copy(copy):
    """Specs, generated files (stale check), the import graph, the Kubernetes manifest, the alert rules
    with their promtool unit tests (the new alert's among them) and runbook sections."""
    result = python(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/unit", "tests/dashboards/test_alerts.py",
                    "tests/dashboards/test_generated.py", "tests/dashboards/test_deploy.py", timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_its_exporter_serves_what_its_spec_says(copy):
    """The conformance test of the copy, for the new collector: every metric, type, help and label set, and
    promtool's lint; and its histogram counts the scheduler's work."""
    result = python(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/exporters/test_conformance.py",
                    "-k", NEW, timeout=600)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lmp", "exporter", NEW, "--listen", f"127.0.0.1:{port}"],
                            cwd=copy, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: _count(url) > 0, "the new collector never counted a run-queue wait", timeout=60)
        held = programs_of(proc.pid)
        assert held
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert not programs_left(held)


def _count(url: str) -> float:
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read().decode()
    except OSError:
        return 0
    return sum(float(line.split()[-1]) for line in body.splitlines() if line.startswith("lmp_waits_latency_seconds_count"))


def test_the_admin_lists_it_and_enables_it(copy, tmp_path):
    data, port, password = tmp_path / "data", free_port(), "a-newcomer-Qx7vKp2m"
    config = tmp_path / "lmp.yaml"
    config.write_text((copy / "config" / "lmp.yaml").read_text().replace("disable_defaults: false", "disable_defaults: true")
                      .replace("run_dir: /run/lmp", f"run_dir: {tmp_path / 'run'}")
                      .replace("data_dir: /var/lib/lmp ", f"data_dir: {data} "))
    env = {**os.environ, "LMP_CONFIG": str(config)}
    made = lmp(copy, "admin", "create-user", "newcomer", "--password-stdin", "--data-dir", str(data),
               input=password + "\n", env=env)
    assert made.returncode == 0, made.stderr
    serve = subprocess.Popen([sys.executable, "-m", "lmp", "admin", "serve", "--listen", f"127.0.0.1:{port}",
                              "--data-dir", str(data)], cwd=copy, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/api/v1/health"), "the admin did not start", timeout=60)
        api = Api(port, "newcomer", password)
        components = api.call("GET", "/components")
        assert NEW in [c["name"] for c in components]
        assert api.call("POST", f"/components/{NEW}/enable")["enabled"] is True
        assert f"  {NEW}:\n    enabled: true" in config.read_text()
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def _answers(url: str) -> bool:
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_the_dashboards_real_prometheus_test_takes_it(copy):
    result = python(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/dashboards/test_prometheus.py",
                    "-k", f"lmp-{NEW}", timeout=900)
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]


def test_lmp_bench_measures_it(copy):
    result = lmp(copy, "bench", "--only", "events", "--collector", NEW, "--runs", "1", timeout=600)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith(f"| {NEW} |"))
    assert float(row.split("|")[3].split()[0]) > 0, row  # LMP's kernel ns per pipe round trip


def test_the_docs_site_has_its_page(copy):
    started = time.monotonic()
    result = python(copy, "-m", "mkdocs", "build", "--strict", "--site-dir", str(copy / "site"), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (copy / "site" / "collectors" / NEW / "index.html").is_file(), time.monotonic() - started
