"""`lmp run` with a web config: a real Prometheus scrapes the exporters over HTTPS with basic auth (as the
service user `lmp run` makes), the admin serves HTTPS with the same certificate, connguard's /events
needs auth, and the admin still pulls connguard's events into the audit log."""
from __future__ import annotations

import json
import socket
import stat
import urllib.request
from pathlib import Path

import bcrypt

from exporters._lib.serving import PASSWORD_FILE, SERVICE_USER, WEB_FILE, Reach
from tests.conftest import connect_from, free_ports, make_cert
from tests.exporters.test_web import curl, events_status
from tests.lmprun import Api, lmp_running, wait_for

FLEET = ("fleet", "a-fleet-scrape-password")


def write_config(tmp_path: Path, ports: dict[str, int], group_path: str, guarded_port: int) -> Path:
    make_cert(tmp_path)
    hashed = bcrypt.hashpw(FLEET[1].encode(), bcrypt.gensalt(rounds=10)).decode()
    (tmp_path / "web.yml").write_text(f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                                      f"basic_auth_users:\n  {FLEET[0]}: {hashed}\n")
    config = {
        "web_config": "web.yml",
        "disable_defaults": True,
        "prometheus": {"listen": f"127.0.0.1:{ports['prometheus']}", "scrape_interval": "1s",
                       "data_dir": str(tmp_path / "prometheus")},
        "admin": {"listen": f"127.0.0.1:{ports['admin']}", "data_dir": str(tmp_path / "data"),
                  "run_dir": str(tmp_path / "run")},
        "collectors": {
            "syscalls": {"enabled": True, "listen": f"127.0.0.1:{ports['syscalls']}"},
            "connguard": {"enabled": True, "listen": f"127.0.0.1:{ports['connguard']}", "policy": {
                "mode": "observe", "cgroups": [group_path],
                "destinations": [{"cidr": "127.0.0.1", "ports": [guarded_port]}]}}}}
    path = tmp_path / "lmp.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def scrape_urls(prometheus_port: int) -> dict[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{prometheus_port}/api/v1/targets?state=active", timeout=10) as r:
        return {t["labels"]["collector"]: t["scrapeUrl"] for t in json.load(r)["data"]["activeTargets"]}


def test_prometheus_scrapes_over_https_with_basic_auth_and_events_need_auth(tmp_path, cgroup):
    group, group_path = cgroup
    ports = free_ports(("syscalls", "connguard", "prometheus", "admin"))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        target = f"127.0.0.1:{listener.getsockname()[1]}"
        config = write_config(tmp_path, ports, group_path, listener.getsockname()[1])
        with lmp_running(config, {"syscalls", "connguard"}, ports["prometheus"]) as started:
            # Up in Prometheus (lmp_running waited for it), and over HTTPS.
            assert scrape_urls(ports["prometheus"]) == {
                name: f"https://127.0.0.1:{ports[name]}/metrics" for name in ("syscalls", "connguard")}
            run_dir = tmp_path / "run"
            for name in (PASSWORD_FILE, WEB_FILE):
                assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name
            assert SERVICE_USER in json.loads((run_dir / WEB_FILE).read_text())["basic_auth_users"]
            assert FLEET[0] in (tmp_path / "web.yml").read_text()  # the operator's file is left as it was

            cert = str(tmp_path / "server.crt")
            url = f"https://127.0.0.1:{ports['syscalls']}/metrics"
            assert curl(url, "--cacert", cert, "-u", ":".join(FLEET)).stdout.startswith("HTTP/1.1 200")
            assert curl(url, "--cacert", cert).stdout.startswith("HTTP/1.1 401")
            assert curl(url.replace("https", "http"), "-u", ":".join(FLEET)).returncode != 0

            service = Reach.of_run_dir(run_dir)
            assert events_status(ports["connguard"], reach=service) == 200
            assert events_status(ports["connguard"], reach=Reach(cert)) == 401

            api = Api(ports["admin"], "admin", started.password, ca_file=cert)  # the admin over HTTPS
            assert curl(f"http://127.0.0.1:{ports['admin']}/api/v1/health").returncode != 0
            pid, comm, outcome = connect_from(group, target)
            assert outcome == {target: "ok"}  # observe mode

            def logged() -> bool:  # the admin pulled connguard's events over HTTPS, as lmp-service
                return ("connguard", "would refuse connect (observe)", f"{target} by pid {pid} ({comm}) in "
                        f"{group_path}") in [(e["actor"], e["action"], e["target"]) for e in api.call("GET", "/audit")]
            wait_for(logged, timeout=15)
