"""Scenario runs started from the admin service: each is an `lmp scenario run|attach` subprocess writing
into DATA_DIR/scenarios/<id>/, bounded in time (SCENARIO_MAX_SECONDS) and in number
(SCENARIO_MAX_RUNNING at once). A run is complete once the recorder has written run.json (its last
file); a recorder that exits without it failed, and its log (lmp.log) says why. A restarted admin finds
its runs again from the database and the recorder's pid."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from flask import current_app

from .models import ScenarioRun, db, now

DEFAULTS = {"SCENARIO_MAX_SECONDS": 300, "SCENARIO_MAX_RUNNING": 2,
            # The recorder's command line before its arguments; tests put a harmless stand-in here.
            "SCENARIO_COMMAND": [sys.executable, "-m", "lmp", "scenario"]}
_procs: dict[int, subprocess.Popen] = {}  # runs this process started, by id: their exit codes come here
_lock = threading.Lock()


def setting(name: str) -> Any:
    return current_app.config.get(name, DEFAULTS[name])


def folder(run_id: int) -> Path:
    return Path(current_app.config["DATA_DIR"]) / "scenarios" / str(run_id)


def argv(run: ScenarioRun) -> list[str]:
    opts = json.loads(run.options)
    args = [*setting("SCENARIO_COMMAND"), run.kind, "--out", str(folder(run.id)), "--quiet",
            "--duration", str(opts["duration"])]
    if opts.get("events"):
        args += ["--events", ",".join(opts["events"])]
    if opts.get("children"):
        args.append("--children")
    for probe in opts.get("uprobes", []):
        args += ["--uprobe", probe]
    target = json.loads(run.target)
    return args + (["--pid", str(target)] if run.kind == "attach" else ["--", *target])


def start(run: ScenarioRun) -> None:
    """Start the recorder of a run just added (it has its id)."""
    out = folder(run.id)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(out / "lmp.log", "ab") as log:
        proc = subprocess.Popen(argv(run), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    with _lock:
        _procs[run.id] = proc
    run.pid = proc.pid


def _alive(run: ScenarioRun) -> bool:
    with _lock:
        proc = _procs.get(run.id)
    if proc is not None:
        return proc.poll() is None
    try:  # started by an earlier admin process: is its recorder still there?
        cmdline = Path(f"/proc/{run.pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, TypeError):
        return False
    return b"scenario" in cmdline and str(folder(run.id)).encode() in cmdline


def refresh(run: ScenarioRun) -> ScenarioRun:
    """Update a running run's status from its recorder (commits when it changed)."""
    if run.status != "running" or _alive(run):
        return run
    result = folder(run.id) / "run.json"
    if result.is_file():
        run.status, run.message = "complete", json.loads(result.read_text()).get("ended_by", "")
    else:
        log = folder(run.id) / "lmp.log"
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.is_file() else []
        run.status, run.message = "failed", "\n".join(tail) or "the recorder ended without results"
    run.finished_at = now()
    with _lock:
        _procs.pop(run.id, None)
    db.session.commit()
    return run


def running() -> int:
    runs = db.session.scalars(db.select(ScenarioRun).filter_by(status="running"))
    return sum(1 for run in runs if refresh(run).status == "running")


def stop(run: ScenarioRun) -> None:
    """Ctrl-C for the recorder: it stops recording and still writes the results."""
    if run.status == "running" and _alive(run) and run.pid:
        os.kill(run.pid, signal.SIGINT)


def remove(run: ScenarioRun) -> None:
    shutil.rmtree(folder(run.id), ignore_errors=True)
    db.session.delete(run)
    db.session.commit()


def artifacts(run: ScenarioRun) -> list[str]:
    from scenario.results import ARTIFACTS
    out = folder(run.id)
    return [name for name in (*ARTIFACTS, "lmp.log") if (out / name).is_file()]


def summary(run: ScenarioRun) -> dict[str, Any] | None:
    path = folder(run.id) / "breakdown.json"
    if run.status != "complete" or not path.is_file():
        return None
    b = json.loads(path.read_text())
    return {"wall_seconds": b["wall_seconds"], "threads": b["threads"], "parts": b["parts"],
            "top_syscalls": b["syscalls"][:10], "events_lost": sum(e["lost"] for e in b["events"].values())}


def stop_all(timeout: float = 10) -> None:
    """Stop every recorder this process started and wait for them (tests; a service that shuts down
    leaves them to finish, and the next one finds their results)."""
    with _lock:
        procs = list(_procs.values())
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
