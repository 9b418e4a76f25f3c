"""The scenarios API with a stand-in recorder (tests/admin/fake_recorder.py): what it refuses, a run's
life from start to results, stopping, deleting, the limit on runs at once, a recorder that fails."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from .served import Service, service, together  # noqa: F401 - service: a fixture


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


def test_commands_are_off_unless_root_turned_them_on_in_the_file(client, auth, app, config_file):
    del app.config["SCENARIO_COMMANDS"]  # as served: the config file decides
    root = auth.headers("root")
    refused = client.post("/api/v1/scenarios", json={"command": ["true"]}, headers=root)
    assert refused.status_code == 403 and "admin.scenario_commands" in refused.json["message"]
    assert client.post("/api/v1/scenarios", json={"pid": os.getpid(), "duration": 1}, headers=root).status_code == 202
    # The API cannot turn it on: an admin token alone must not be worth root.
    answer = client.get("/api/v1/config", headers=root)
    on = answer.data.decode().replace("scenario_commands: false", "scenario_commands: true")
    put = client.put("/api/v1/config", data=on, headers={**root, "If-Match": answer.headers["ETag"]})
    assert put.status_code == 422 and "only root on the host" in put.json["message"]
    assert put.json["errors"]["line"] == next(i for i, line in enumerate(on.splitlines(), 1) if "scenario_commands: true" in line)
    config_file.write_text(on)  # root on the host, by hand
    assert client.post("/api/v1/scenarios", json={"command": ["true"]}, headers=root).status_code == 202
    answer = client.get("/api/v1/config", headers=root)  # and the API may turn it off again
    off = answer.data.decode().replace("scenario_commands: true", "scenario_commands: false")
    assert client.put("/api/v1/config", data=off, headers={**root, "If-Match": answer.headers["ETag"]}).status_code == 204
    assert client.post("/api/v1/scenarios", json={"command": ["true"]}, headers=root).status_code == 403


def test_the_audit_keeps_the_whole_command_after_the_run_is_deleted(client, auth):
    root = auth.headers("root")
    command = ["true", *[" " * 200] * 3, "--the-part-that-matters", "rm -rf /somewhere"]
    run = client.post("/api/v1/scenarios", json={"command": command, "duration": 1}, headers=root).json
    wait_for(client, root, run["id"], "complete")
    assert client.delete(f"/api/v1/scenarios/{run['id']}", headers=root).status_code == 204
    events = client.get("/api/v1/audit", headers=root).json
    started = next(e for e in events if e["action"] == "scenario run")
    assert json.loads(started["detail"]) == command  # every word, though the run is gone
    assert ("root", "scenario delete", str(run["id"])) in [(e["actor"], e["action"], e["target"]) for e in events]


def test_a_daemonised_child_ends_with_its_run(client, auth, tmp_path):
    pidfile = tmp_path / "daemon.pid"
    # The command double-forks a daemon into a session of its own, and exits at once.
    command = ["sh", "-c", f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' > /dev/null 2>&1 &"]
    run = client.post("/api/v1/scenarios", json={"command": command, "duration": 1}, headers=auth.headers("root")).json
    deadline = time.monotonic() + 10
    while not pidfile.is_file() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline, "the daemon never started"
        time.sleep(0.05)
    daemon = int(pidfile.read_text())
    try:
        wait_for(client, auth.headers("root"), run["id"], "complete")
        assert gone(daemon, timeout=10), f"daemon {daemon} outlived its run"
    finally:
        if not gone(daemon, timeout=0):
            os.kill(daemon, signal.SIGKILL)


def test_a_recorder_past_its_cap_is_ended_with_its_whole_cgroup(client, auth, app):
    app.config["SCENARIO_GRACE_SECONDS"] = 1
    root = auth.headers("root")
    started = time.monotonic()
    run = client.post("/api/v1/scenarios", json={"command": ["true", "--lmp-test-hang"], "duration": 1}, headers=root).json
    failed = wait_for(client, root, run["id"], "failed", timeout=20)
    assert 1.5 < time.monotonic() - started < 10 and failed["finished_at"]
    assert gone(run["pid"], timeout=5)


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z" or time.monotonic() >= deadline:
            return state == "Z"
        time.sleep(0.05)


def test_concurrent_starts_never_pass_the_cap_on_running_scenarios(service):
    ops = service.login("ops")
    for _ in range(4):
        answers = together([lambda: service.call("POST", "/api/v1/scenarios", ops, {"pid": os.getpid(), "duration": 30})
                            for _ in range(10)])
        started = [a.body["id"] for a in answers if a.status == 202]
        assert len(started) == 2 and sorted(a.status for a in answers) == [202] * 2 + [409] * 8, \
            [(a.status, a.body) for a in answers]
        running = [r for r in service.call("GET", "/api/v1/scenarios", ops).body if r["status"] == "running"]
        assert len(running) == 2
        for run_id in started:
            assert service.call("POST", f"/api/v1/scenarios/{run_id}/stop", ops).status == 202
        for run_id in started:
            wait_until_ended(service, ops, run_id)


def wait_until_ended(service: Service, token: str, run_id: int) -> None:
    deadline = time.monotonic() + 30
    while service.call("GET", f"/api/v1/scenarios/{run_id}", token).body["status"] == "running":
        assert time.monotonic() < deadline, f"scenario {run_id} did not end"
        time.sleep(0.1)
