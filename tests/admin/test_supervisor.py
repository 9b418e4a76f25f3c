"""The supervisor with real exporter processes: enable and disable through the API, a SIGKILLed exporter
comes back, and a restarted admin adopts the running processes instead of starting duplicates."""
from __future__ import annotations

import os
import signal
import time

import pytest

from admin import create_app
from admin.users import create
from tests.conftest import free_port
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
