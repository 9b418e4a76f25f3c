"""The scenarios API with a stand-in recorder (tests/admin/fake_recorder.py): what it refuses, a run's
life from start to results, stopping, deleting, the limit on runs at once, a recorder that fails."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest


def wait_for(client, headers, run_id: int, status: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/scenarios/{run_id}", headers=headers).json
        if run["status"] == status:
            return run
        time.sleep(0.05)
    raise AssertionError(f"scenario {run_id} is {run['status']}, not {status}")


@pytest.mark.parametrize("body, message", [
    ({}, "either a command or a pid"),
    ({"command": ["true"], "pid": 1}, "either a command or a pid"),
    ({"command": ["no-such-command-lmp"]}, "command not found"),
    ({"pid": 4000000}, "no process with pid"),
    ({"pid": 1, "duration": 301}, "over this service's limit"),
    ({"pid": 1, "events": ["nonsense"]}, "Must be one of"),
    ({"pid": 1, "uprobes": ["no colon"]}, "String does not match"),
    ({"command": ["a\x00b"]}, "String does not match"),
])
def test_bad_requests_are_422_and_start_nothing(client, auth, body, message):
    root = auth.headers("root")
    response = client.post("/api/v1/scenarios", json=body, headers=root)
    assert response.status_code == 422 and message in str(response.json), response.json
    assert client.get("/api/v1/scenarios", headers=root).json == []


def test_a_run_from_start_to_results_then_deleted(client, auth, app):
    root, view = auth.headers("root"), auth.headers("view")
    started = client.post("/api/v1/scenarios", json={"command": ["true", "x"], "duration": 2, "children": True},
                          headers=root)
    assert started.status_code == 202 and started.json["kind"] == "run" and started.json["command"] == ["true", "x"]
    run = wait_for(client, view, started.json["id"], "complete")
    assert run["message"] == "exit" and run["summary"]["wall_seconds"] == 0.5 and run["options"]["children"] is True
    assert {"run.json", "breakdown.json", "report.html", "lmp.log"} <= set(run["artifacts"])
    report = client.get(f"/api/v1/scenarios/{run['id']}/artifacts/report.html", headers=view)
    assert report.status_code == 200 and report.mimetype == "text/html" and b"fake" in report.data
    assert "default-src 'none'" in report.headers["Content-Security-Policy"]
    assert client.get(f"/api/v1/scenarios/{run['id']}/artifacts/run.json", headers=view).json["ended_by"] == "exit"
    for name in ("timeline.json", "../admin.db", "nosuch"):
        assert client.get(f"/api/v1/scenarios/{run['id']}/artifacts/{name}", headers=view).status_code == 404
    assert [r["id"] for r in client.get("/api/v1/scenarios", headers=view).json] == [run["id"]]
    assert client.delete(f"/api/v1/scenarios/{run['id']}", headers=root).status_code == 204
    assert not (Path(app.config["DATA_DIR"]) / "scenarios" / str(run["id"])).exists()
    assert client.get(f"/api/v1/scenarios/{run['id']}", headers=view).status_code == 404


def test_stop_ends_a_running_attach_with_results(client, auth):
    ops = auth.headers("ops")
    run = client.post("/api/v1/scenarios", json={"pid": os.getpid(), "duration": 30}, headers=ops).json
    assert run["status"] == "running" and run["pid"] == os.getpid()
    time.sleep(0.5)  # the stand-in is waiting for its duration
    assert client.delete(f"/api/v1/scenarios/{run['id']}", headers=auth.headers("root")).status_code == 409
    assert client.post(f"/api/v1/scenarios/{run['id']}/stop", headers=ops).status_code == 202
    done = wait_for(client, ops, run["id"], "complete")
    assert done["message"] == "interrupt"


def test_runs_at_once_are_limited(client, auth, app):
    app.config["SCENARIO_MAX_RUNNING"] = 1
    ops = auth.headers("ops")
    first = client.post("/api/v1/scenarios", json={"pid": os.getpid(), "duration": 30}, headers=ops).json
    second = client.post("/api/v1/scenarios", json={"pid": os.getpid(), "duration": 30}, headers=ops)
    assert second.status_code == 409 and "running already" in second.json["message"]
    time.sleep(0.5)  # a recorder interrupted before it has started fails (no results); this one has started
    client.post(f"/api/v1/scenarios/{first['id']}/stop", headers=ops)
    wait_for(client, ops, first["id"], "complete")
    assert client.post("/api/v1/scenarios", json={"pid": os.getpid(), "duration": 1}, headers=ops).status_code == 202


def test_a_recorder_that_fails_says_why(client, auth):
    root = auth.headers("root")
    run = client.post("/api/v1/scenarios", json={"command": ["false"]}, headers=root).json
    failed = wait_for(client, root, run["id"], "failed")
    assert "cannot run false" in failed["message"] and failed["summary"] is None and failed["finished_at"]
