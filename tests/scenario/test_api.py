"""The admin service's scenarios API with the real recorder: an admin runs a command, an operator attaches
to a process; both end complete, and each result is fetched back and matches what the programs did."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from admin import create_app
from admin.models import db
from admin.scenario_runs import stop_all
from admin.throttle import limiter
from admin.users import create


@pytest.fixture
def api(tmp_path, monkeypatch):
    monkeypatch.delenv("LMP_JWT_SECRET_KEY", raising=False)
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "SCENARIO_COMMANDS": True})
    limiter.reset()
    with app.app_context():
        create("root", "root-pass-Ahw9qk", "admin")
        create("ops", "ops-pass-Ahw9qk", "operator")
    client = app.test_client()

    def headers(name: str) -> dict:
        token = client.post("/api/v1/auth/login", json={"username": name, "password": f"{name}-pass-Ahw9qk"}).json
        return {"Authorization": f"Bearer {token['access_token']}"}
    yield client, headers
    stop_all()
    with app.app_context():
        db.engine.dispose()


def finished(client, headers, run_id: int, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/scenarios/{run_id}", headers=headers).json
        if run["status"] != "running":
            return run
        time.sleep(0.2)
    raise AssertionError(f"scenario {run_id} still running after {timeout} s")


def test_run_and_attach_through_the_api(api):
    client, headers = api
    root, ops = headers("root"), headers("ops")
    started = client.post("/api/v1/scenarios", headers=root, json={
        "command": ["sh", "-c", "for i in 1 2 3; do sleep 0.1; done"], "children": True, "duration": 60})
    assert started.status_code == 202, started.json
    run = finished(client, root, started.json["id"])
    assert run["status"] == "complete" and run["message"] == "exit", run
    assert run["summary"]["parts"]["sleeping"] >= 0.3 and run["summary"]["threads"] >= 4  # sh and 3 sleeps
    breakdown = client.get(f"/api/v1/scenarios/{run['id']}/artifacts/breakdown.json", headers=ops).json
    assert {s["name"]: s["count"] for s in breakdown["syscalls"]}["clock_nanosleep"] == 3
    trace = client.get(f"/api/v1/scenarios/{run['id']}/artifacts/timeline.json", headers=ops).json
    assert sum(1 for e in trace["traceEvents"] if e.get("name") == "clock_nanosleep") == 3
    html = client.get(f"/api/v1/scenarios/{run['id']}/artifacts/report.html", headers=ops)
    assert html.mimetype == "text/html" and b'"kind":"run"' in html.data

    sleeper = subprocess.Popen([sys.executable, "-c", "import time\nfor _ in range(120): time.sleep(0.05)"])
    try:
        attached = client.post("/api/v1/scenarios", headers=ops, json={"pid": sleeper.pid, "duration": 20,
                                                                        "events": ["syscalls", "offcpu"]})
        assert attached.status_code == 202, attached.json
        done = finished(client, ops, attached.json["id"])
    finally:
        sleeper.kill()
        sleeper.wait()
    assert done["status"] == "complete", done
    assert done["kind"] == "attach" and done["pid"] == sleeper.pid and done["options"]["events"] == ["syscalls", "offcpu"]
    assert done["summary"]["parts"]["sleeping"] > 0
    assert "oncpu.folded" in done["artifacts"]
