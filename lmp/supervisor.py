"""The one owner of LMP's processes under `lmp run`: it asks the spawner for an exporter per enabled
collector (and for the admin service), stops the disabled ones, restarts a crashed one with backoff and
reports a crash loop. Its state, which the admin's catalog shows, is written to <run_dir>/state.json at
every change; the admin asks it to look at the config again with SIGHUP after an edit (it also looks every
second)."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import config as configs
from .spawner import Spawner

BACKOFF = (1, 2, 5, 10, 30, 60)  # seconds before the 1st, 2nd, ... restart in a row
CRASH_LOOP = 5  # crashes within CRASH_WINDOW seconds
CRASH_WINDOW = 120
STOP_SECONDS = 10.0  # SIGTERM, then SIGKILL
STATE_FILE = "state.json"
ADMIN = "admin"  # the admin service, supervised beside the exporters


@dataclass
class Child:
    name: str
    listen: str = ""
    pid: int | None = None
    started_at: float | None = None  # wall-clock time
    restarts: int = 0
    last_error: str = ""
    exited_at: float | None = None  # wall-clock time of its last crash
    crashes: list[float] = field(default_factory=list)
    next_start: float = 0.0  # monotonic time before which no restart is tried
    stopping: bool = False
    stop_by: float = 0.0  # monotonic time after which a child asked to stop is killed
    wanted: tuple[Any, ...] | None = None  # what it was started with; a change restarts it

    @property
    def crash_loop(self) -> bool:
        return len([t for t in self.crashes if time.monotonic() - t < CRASH_WINDOW]) >= CRASH_LOOP

    def state(self) -> dict[str, Any]:
        running = self.pid is not None  # one asked to stop runs until it has exited (and its hooks are gone)
        return {"running": running, "pid": self.pid if running else None, "listen": self.listen,
                "started_at": self.started_at if running else None, "restarts": self.restarts,
                "last_error": self.last_error, "exited_at": self.exited_at, "crash_loop": self.crash_loop}


def why_exited(code: int) -> str:
    return f"killed by signal {signal.Signals(-code).name} (code {code})" if code < 0 else f"exited with code {code}"


class Supervisor:
    def __init__(self, cfg: configs.Config, spawner: Spawner, admin_args: dict[str, Any] | None,
                 web_file: str | None = None) -> None:
        self.cfg, self.spawner, self.admin_args = cfg, spawner, admin_args
        self.web_file = web_file  # the exporters' effective web config (lmp/webservice.py), fixed for the run
        self.run_dir = Path(cfg.admin.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        self.children: dict[str, Child] = {}
        self.stamp = self._stamp()
        self.admin_stderr: int | None = None  # the admin's stderr, read by `lmp run` (set when started)

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.cfg.path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def wanted(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """name -> (listen, the spawner's args) for everything that should run now."""
        found = {c.name: (c.listen, {"name": c.name, "listen": c.listen, "options": c.options,
                                     "config": str(self.cfg.path), "btf_path": self.cfg.btf_path,
                                     "web_config": self.web_file})
                 for c in self.cfg.collectors.values() if c.enabled}
        if self.admin_args is not None:
            found[ADMIN] = (self.cfg.admin.listen, self.admin_args)
        return found

    def reconcile(self, force: bool = False, admit: Callable[[str], bool] = lambda name: True) -> None:
        """Read the config again when it changed (the last good one stays if it is bad), then make the
        running processes match it; `admit` says which of those to start may start now."""
        stamp = self._stamp()
        if force or stamp != self.stamp:
            self.stamp = stamp
            try:
                self.cfg = configs.load_in_child(self.cfg.path)
            except (ValueError, OSError) as err:
                print(f"lmp run: the config cannot be used, the last good one stays: {err}", file=sys.stderr)
        self.reap()
        wanted = self.wanted()
        for name, child in self.children.items():
            if name not in wanted or (child.wanted is not None and child.wanted != wanted[name]):
                self._stop(child)
        for name, (listen, args) in wanted.items():
            child = self.children.setdefault(name, Child(name))
            if child.pid is None and time.monotonic() >= child.next_start and admit(name):
                self._start(child, listen, args)
        self.write_state()

    def _start(self, child: Child, listen: str, args: dict[str, Any]) -> None:
        log = os.open(self.run_dir / f"{child.name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        err = log
        if child.name == ADMIN:  # its stderr goes to `lmp run`, which shows it (the first admin's password)
            read, err = os.pipe2(os.O_CLOEXEC)
            self.admin_stderr = read
        try:
            child.pid = self.spawner.spawn("admin" if child.name == ADMIN else "exporter", args, log, err)
        finally:
            os.close(log)
            if err != log:
                os.close(err)
        if child.started_at is not None:
            child.restarts += 1
        child.listen, child.started_at, child.wanted = listen, time.time(), (listen, args)

    def _stop(self, child: Child) -> None:
        """Ask it to stop; its exit is seen by reap()."""
        if child.pid is not None and not child.stopping:
            child.stopping, child.stop_by = True, time.monotonic() + STOP_SECONDS
            os.kill(child.pid, signal.SIGTERM)
        elif child.pid is None:
            child.wanted = None

    def reap(self) -> None:
        """Take note of the children that exited: the stopped ones are done with, the others crashed and
        restart after a backoff that grows with the crashes of the last CRASH_WINDOW seconds."""
        by_pid = {c.pid: c for c in self.children.values() if c.pid is not None}
        for pid, code in self.spawner.exited():
            child = by_pid.get(pid)
            if child is None:
                continue
            child.pid = None
            if child.stopping:
                child.stopping, child.wanted, child.started_at = False, None, None
                continue
            now = time.monotonic()
            child.crashes = [t for t in child.crashes if now - t < CRASH_WINDOW] + [now]
            delay = BACKOFF[min(len(child.crashes) - 1, len(BACKOFF) - 1)]
            child.next_start, child.last_error, child.exited_at = now + delay, why_exited(code), time.time()
            loop = " (a crash loop)" if child.crash_loop else ""
            print(f"lmp run: {child.name} {child.last_error}{loop}; restarting it in {delay} s "
                  f"(log: {self.run_dir / f'{child.name}.log'})", file=sys.stderr, flush=True)
        for child in self.children.values():  # stopped, but slow to go
            if child.stopping and child.pid is not None and time.monotonic() > child.stop_by:
                os.kill(child.pid, signal.SIGKILL)

    def write_state(self) -> None:
        """<run_dir>/state.json, replaced whole: the admin reads it for the catalog."""
        state = {"pid": os.getpid(), "children": {name: c.state() for name, c in self.children.items()}}
        partial = self.run_dir / f".{STATE_FILE}.tmp"
        partial.write_text(json.dumps(state))
        partial.replace(self.run_dir / STATE_FILE)

    def stop_all(self) -> None:
        """Stop every child: SIGTERM to all at once (they stop in parallel), then wait for them."""
        for child in self.children.values():
            self._stop(child)
        deadline = time.monotonic() + STOP_SECONDS + 5
        while any(c.pid is not None for c in self.children.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
            self.reap()
        (self.run_dir / STATE_FILE).unlink(missing_ok=True)


def state(run_dir: Path) -> dict[str, Any]:
    """What the supervisor last wrote ({} when `lmp run` is not running): the admin's view of the processes."""
    try:
        found = json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    try:
        os.kill(found["pid"], 0)
    except (OSError, KeyError, TypeError):
        return {}  # left by an `lmp run` that is gone
    return found


def child_state(run_dir: Path, name: str) -> dict[str, Any]:
    """One process's state as the catalog shows it: running, pid, uptime, restarts, last error."""
    found = state(run_dir).get("children", {}).get(name) or asdict(Child(name)) | {"running": False}
    uptime = round(time.time() - found["started_at"], 1) if found.get("running") and found.get("started_at") else None
    return {"running": bool(found.get("running")), "pid": found.get("pid") if found.get("running") else None,
            "uptime_seconds": uptime, "restarts": found.get("restarts", 0), "last_error": found.get("last_error", ""),
            "crash_loop": bool(found.get("crash_loop"))}


def reconcile_now(run_dir: Path, name: str, running: bool, timeout: float = 10.0) -> None:
    """After an edit of the config: ask the running `lmp run` (if any) to look at it now (SIGHUP), and wait
    until `name` runs (or fails to start) or has stopped, as `running` says."""
    host = state(run_dir).get("pid")
    if not host:
        return
    asked = time.time()
    os.kill(host, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = state(run_dir).get("children", {}).get(name, {})
        if bool(now.get("running")) == running or (running and (now.get("exited_at") or 0) >= asked):
            return
        time.sleep(0.05)
