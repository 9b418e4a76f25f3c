"""Scenario runs started from the admin service: each is an `lmp scenario run|attach` subprocess writing
into DATA_DIR/scenarios/<id>/, bounded in time (SCENARIO_MAX_SECONDS) and in number
(SCENARIO_MAX_RUNNING at once). A run is complete once the recorder has written run.json (its last
file); a recorder that exits without it failed, and its log (lmp.log) says why. A restarted admin finds
its runs again from the database and the recorder's pid.

Each run has a cgroup of its own (admin/cgroups.py), killed as a whole when the recorder ends, and at the
latest when its duration and SCENARIO_GRACE_SECONDS (for writing the results) have passed: nothing a
command starts, daemons included, outlives its run. Whether an admin may run commands at all is the
config's admin.scenario_commands, off unless root turned it on by hand."""
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

from exporters._lib.yamlfile import YamlError
from lmp import config as configs

from . import cgroups
from .models import ScenarioRun, db, now

DEFAULTS = {"SCENARIO_MAX_SECONDS": 300, "SCENARIO_MAX_RUNNING": 2, "SCENARIO_GRACE_SECONDS": 60,
            # The recorder's command line before its arguments; tests put a harmless stand-in here.
            "SCENARIO_COMMAND": [sys.executable, "-m", "lmp", "scenario"]}
_procs: dict[int, subprocess.Popen] = {}  # runs this process started, by id: their exit codes come here
_lock = threading.Lock()
# Held from counting the running runs to starting a new one, so that concurrent starts cannot all pass
# the count (the service is one process).
starting = threading.Lock()


def commands_allowed() -> bool:
    """admin.scenario_commands in the config file, read at each request (the API cannot turn it on, see
    api/config.py; root on the host can, by editing the file). A broken file allows nothing."""
    if "SCENARIO_COMMANDS" in current_app.config:  # set by tests
        return bool(current_app.config["SCENARIO_COMMANDS"])
    try:
        return configs.load(Path(current_app.config.get("LMP_CONFIG") or configs.path_from_env())).admin.scenario_commands
    except YamlError:
        return False


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


def group(run_id: int) -> Path:
    return cgroups.path_for(current_app.config["DATA_DIR"], run_id)


def start(run: ScenarioRun) -> None:
    """Start the recorder of a run just added (it has its id), in a cgroup of its own (OSError if the
    host cannot make one: then nothing starts)."""
    out, cg = folder(run.id), group(run.id)
    cgroups.make(cg)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(out / "lmp.log", "ab") as log:
        proc = subprocess.Popen(cgroups.wrap(cg, argv(run)), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    with _lock:
        _procs[run.id] = proc
    run.pid = proc.pid
    cap = float(json.loads(run.options)["duration"]) + float(setting("SCENARIO_GRACE_SECONDS"))
    threading.Thread(target=_end_at_cap, args=(proc, cg, cap), daemon=True, name=f"lmp-scenario-{run.id}").start()


def _end_at_cap(proc: subprocess.Popen, cg: Path, cap: float) -> None:
    """When the recorder ends, or at the run's cap if it has not, kill whatever is left in its cgroup."""
    try:
        proc.wait(timeout=cap)
    except subprocess.TimeoutExpired:
        pass  # past its cap: the recorder goes too, and the run is failed
    cgroups.kill(cg)
    proc.wait()


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
    if run.status != "running":
        return run
    if _alive(run):
        if run.id in _procs or not _past_cap(run):
            return run
        cgroups.kill(group(run.id))  # started by an earlier admin, so no watch of ours ends it at its cap
    result = folder(run.id) / "run.json"
    if result.is_file():
        run.status, run.message = "complete", json.loads(result.read_text()).get("ended_by", "")
    else:
        log = folder(run.id) / "lmp.log"
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.is_file() else []
        run.status, run.message = "failed", "\n".join(tail) or "the recorder ended without results"
    run.finished_at = now()
    cgroups.kill(group(run.id))  # a run from before a restart: what it left, if anything
    with _lock:
        _procs.pop(run.id, None)
    db.session.commit()
    return run


def _past_cap(run: ScenarioRun) -> bool:
    started = run.created_at.replace(tzinfo=run.created_at.tzinfo or now().tzinfo)
    cap = float(json.loads(run.options)["duration"]) + float(setting("SCENARIO_GRACE_SECONDS"))
    return (now() - started).total_seconds() > cap


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
