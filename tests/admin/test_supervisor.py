"""The supervisor with real exporter processes: enable and disable through the API, a SIGKILLed exporter
comes back, and a restarted admin adopts the running processes instead of starting duplicates. Function
components managed the same way, their rules changed through the API, connguard's refusals in the audit log."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from admin import create_app
from admin.users import create
from tests.conftest import Scrape, connect_from, datagrams_received, free_port, send_datagrams
from tests.lmprun import serving

from .conftest import PASSWORDS


def wait(condition, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {condition}"
        time.sleep(0.2)


@pytest.fixture
def setup(tmp_path):
    ports = {"syscalls": free_port(), "runqlat": free_port()}
    config = tmp_path / "lmp.yaml"
    config.write_text("prometheus:\n  enabled: false\n  listen: 127.0.0.1:1\ncollectors:\n"
                      f"  syscalls:\n    enabled: true\n    listen: 127.0.0.1:{ports['syscalls']}\n"
                      f"  runqlat:\n    enabled: false\n    listen: 127.0.0.1:{ports['runqlat']}\n")
    settings = {"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "LMP_CONFIG": str(config),
                "RUN_DIR": str(tmp_path / "run"), "SUPERVISE": True}
    apps = []

    def make_app():  # type: ignore[no-untyped-def]
        apps.append(create_app(settings))
        return apps[-1]

    yield make_app, ports, config
    for app in apps:
        app.extensions["lmp_supervisor"].shutdown(stop_exporters=True)


def test_enable_disable_crash_and_adoption(setup):
    make_app, ports, config = setup
    app = make_app()
    with app.app_context():
        create("root", PASSWORDS["root"], "admin")
    client = app.test_client()
    token = client.post("/api/v1/auth/login", json={"username": "root", "password": PASSWORDS["root"]}).json
    headers = {"Authorization": f"Bearer {token['access_token']}"}

    wait(lambda: serving(ports["syscalls"]))  # enabled in the config: started at once
    assert not serving(ports["runqlat"])
    enabled = client.post("/api/v1/components/runqlat/enable", headers=headers)
    assert enabled.status_code == 200 and enabled.json["enabled"] is True
    assert "enabled: true" in config.read_text().split("runqlat:")[1]
    wait(lambda: serving(ports["runqlat"]))
    targets = client.get("/api/v1/sd", headers=headers).json
    assert {g["labels"]["collector"] for g in targets} == {"syscalls", "runqlat"}
    assert {t for g in targets for t in g["targets"]} == {f"127.0.0.1:{port}" for port in ports.values()}

    disabled = client.post("/api/v1/components/runqlat/disable", headers=headers)
    assert disabled.status_code == 200 and disabled.json["running"] is False
    wait(lambda: not serving(ports["runqlat"]))  # its process ended and its port closed
    assert "runqlat" not in {g["labels"]["collector"] for g in client.get("/api/v1/sd", headers=headers).json}

    pid = client.get("/api/v1/components/syscalls", headers=headers).json["pid"]
    os.kill(pid, signal.SIGKILL)
    # Down but enabled: still a target, so that Prometheus records up == 0 for it.
    assert "syscalls" in {g["labels"]["collector"] for g in client.get("/api/v1/sd", headers=headers).json}
    wait(lambda: client.get("/api/v1/components/syscalls", headers=headers).json["restarts"] == 1)
    wait(lambda: serving(ports["syscalls"]))
    state = client.get("/api/v1/components/syscalls", headers=headers).json
    assert state["running"] and state["pid"] != pid and "code -9" in state["last_error"]

    # An admin restart adopts the running exporter: same process, no duplicate.
    app.extensions["lmp_supervisor"].shutdown()
    again = make_app()
    token = again.test_client().post("/api/v1/auth/login", json={"username": "root", "password": PASSWORDS["root"]}).json
    adopted = again.test_client().get("/api/v1/components/syscalls",
                                      headers={"Authorization": f"Bearer {token['access_token']}"}).json
    assert adopted["running"] and adopted["pid"] == state["pid"]


@pytest.fixture
def function_admin(tmp_path):  # type: ignore[no-untyped-def]
    """A supervising admin whose config has netguard and connguard, both off: (client, headers by role,
    ports, config path). Its exporters are stopped afterwards."""
    ports = {"netguard": free_port(), "connguard": free_port()}
    config = tmp_path / "lmp.yaml"
    config.write_text("prometheus:\n  enabled: false\n  listen: 127.0.0.1:1\ncollectors:\n" + "".join(
        f"  {name}:\n    enabled: false\n    listen: 127.0.0.1:{port}\n" for name, port in ports.items()))
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "LMP_CONFIG": str(config),
                      "RUN_DIR": str(tmp_path / "run"), "SUPERVISE": True})
    try:
        with app.app_context():
            for name, role in (("root", "admin"), ("ops", "operator")):
                create(name, PASSWORDS[name], role)
        client = app.test_client()
        headers = {name: {"Authorization": "Bearer " + client.post("/api/v1/auth/login", json={
            "username": name, "password": PASSWORDS[name]}).json["access_token"]} for name in ("root", "ops")}
        yield client, headers, ports, config
    finally:
        app.extensions["lmp_supervisor"].shutdown(stop_exporters=True)


def applied_rules(port: int) -> float:
    scrape = Scrape({f.name: f for f in text_string_to_metric_families(
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())})
    return scrape.value("lmp_exporter_rules_reloads_total", 0.0, result="applied")


def test_connguard_through_the_api_and_its_refusals_in_the_audit_log(function_admin, cgroup):
    client, headers, ports, config = function_admin
    group, group_path = cgroup
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        target = f"127.0.0.1:{listener.getsockname()[1]}"
        assert client.post("/api/v1/components/connguard/enable", headers=headers["root"]).status_code == 200
        wait(lambda: serving(ports["connguard"]))
        assert client.put("/api/v1/components/connguard/rules", headers=headers["ops"], json={}).status_code == 403
        rules = {"mode": "enforce", "cgroups": [group_path],
                 "destinations": [{"cidr": "127.0.0.1", "ports": [listener.getsockname()[1]]}]}
        assert client.put("/api/v1/components/connguard/rules", headers=headers["root"], json=rules).status_code == 200
        wait(lambda: applied_rules(ports["connguard"]) == 1)  # the running component, no restart
        pid, comm, outcome = connect_from(group, target)
        assert outcome == {target: "EPERM"}

    def logged() -> bool:
        events = client.get("/api/v1/audit", headers=headers["root"]).json
        return ("connguard", "refused connect", f"{target} by pid {pid} ({comm}) in {group_path}") in [
            (e["actor"], e["action"], e["target"]) for e in events]
    wait(logged, timeout=10)
    assert client.post("/api/v1/components/connguard/disable", headers=headers["ops"]).json["running"] is False
    assert not subprocess.run(["bpftool", "-j", "cgroup", "show", str(group)], capture_output=True,
                              text=True).stdout.strip("[]\n")


def test_netguard_through_the_api_drops_what_its_new_rules_say(function_admin, veth_pair):
    client, headers, ports, _ = function_admin
    pair = veth_pair
    assert client.post("/api/v1/components/netguard/enable", headers=headers["ops"]).status_code == 200
    wait(lambda: serving(ports["netguard"]))
    receiver = pair.receiver()
    rules = {"mode": "enforce", "interfaces": [pair.interface], "blocklist": [pair.PEER_V4[0]]}
    assert client.put("/api/v1/components/netguard/rules", headers=headers["root"], json=rules).status_code == 200
    wait(lambda: applied_rules(ports["netguard"]) == 1)
    send_datagrams(pair.sender(pair.PEER_V4[0]), receiver, 100)
    send_datagrams(pair.sender(pair.PEER_V4[1]), receiver, 100)
    assert datagrams_received(receiver) == 100
    assert client.post("/api/v1/components/netguard/disable", headers=headers["ops"]).json["running"] is False
    assert pair.xdp_programs() == []
