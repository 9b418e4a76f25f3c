"""The exporter processes' one owner: starts the enabled collectors, stops the disabled ones, restarts a
crashed one with backoff and reports a crash loop. Processes outlive the admin service (their own
session); a pidfile per collector in the run directory lets a restarted admin adopt them instead of
starting duplicates."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from exporters._lib.yamlfile import YamlError
from lmp import config as configs

from .events import Puller

BACKOFF = (1, 2, 5, 10, 30, 60)  # seconds before the 1st, 2nd, ... restart in a row
CRASH_LOOP = 5  # crashes within CRASH_WINDOW seconds
CRASH_WINDOW = 120


@dataclass
class Exporter:
    name: str
    listen: str = ""
    pid: int | None = None
    started_at: float | None = None  # wall-clock time
    restarts: int = 0
    last_error: str = ""
    crashes: list[float] = field(default_factory=list)
    next_start: float = 0.0  # monotonic time before which no restart is tried
    proc: subprocess.Popen | None = None  # set when this admin started it (else adopted)

    @property
    def crash_loop(self) -> bool:
        return len([t for t in self.crashes if time.monotonic() - t < CRASH_WINDOW]) >= CRASH_LOOP


def _is_exporter(pid: int, name: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"exporter" in cmdline and name.encode() in cmdline


class Supervisor:
    def __init__(self, config_path: Path, run_dir: Path,
                 on_events: Callable[[str, list[dict[str, Any]], int], None] | None = None) -> None:
        self.config_path, self.run_dir = config_path, run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.events = Puller(run_dir, on_events) if on_events else None  # function components' events
        self.exporters: dict[str, Exporter] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.reconcile()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="lmp-supervisor")
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping.wait(1.0):
            self.reconcile()
            if self.events:
                with self.lock:
                    running = [(e.name, e.pid, e.listen) for e in self.exporters.values()
                               if e.pid is not None and e.listen]
                self.events.pull(running)  # outside the lock: a slow exporter must not block state()

    def reconcile(self) -> None:
        """Make the running exporters match the config (the last good one, if the file is bad)."""
        try:
            cfg = configs.load(self.config_path)
        except YamlError:
            return
        with self.lock:
            for name, c in cfg.collectors.items():
                e = self.exporters.setdefault(name, Exporter(name))
                if c.enabled:
                    self._ensure(e, c.listen)
                else:
                    self._stop(e)

    def _pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _alive(self, e: Exporter) -> bool:
        if e.pid is None:  # maybe a previous admin started it: adopt it
            try:
                pid = int(self._pidfile(e.name).read_text().split()[0])
            except (OSError, ValueError, IndexError):
                return False
            if not _is_exporter(pid, e.name):
                return False
            e.pid, e.started_at = pid, os.stat(f"/proc/{pid}").st_mtime
        if e.proc is not None:
            code = e.proc.poll()
            if code is not None:
                e.last_error = f"exited with code {code}"
                return False
            return True
        if _is_exporter(e.pid, e.name):
            return True
        e.last_error = "exited (its exit code went to the admin that started it)"
        return False

    def _ensure(self, e: Exporter, listen: str) -> None:
        if self._alive(e) and e.listen in ("", listen):
            e.listen = listen
            return
        if e.pid is not None and e.listen == listen:  # it was running: a crash
            now = time.monotonic()  # the backoff grows with the crashes of the last CRASH_WINDOW seconds only
            e.crashes = [t for t in e.crashes if now - t < CRASH_WINDOW] + [now]
            delay = BACKOFF[min(len(e.crashes) - 1, len(BACKOFF) - 1)]
            e.next_start = now + delay
            loop = " (a crash loop)" if e.crash_loop else ""
            print(f"lmp admin: exporter {e.name} {e.last_error}{loop}; restarting it in {delay} s "
                  f"(log: {self.run_dir / f'{e.name}.log'})", file=sys.stderr, flush=True)
        elif e.pid is not None:  # the listen address changed: restart it there
            self._stop(e)
        e.pid, e.proc = None, None
        if time.monotonic() < e.next_start:
            return
        log = open(self.run_dir / f"{e.name}.log", "ab")
        with log:
            e.proc = subprocess.Popen([sys.executable, "-m", "lmp", "--config", str(self.config_path), "exporter",
                                       e.name], stdout=log, stderr=log, start_new_session=True)
        if e.started_at is not None:
            e.restarts += 1
        e.pid, e.listen, e.started_at = e.proc.pid, listen, time.time()
        self._pidfile(e.name).write_text(f"{e.pid} {listen}\n")

    def _stop(self, e: Exporter) -> None:
        if self._alive(e) and e.pid is not None:
            os.kill(e.pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _is_exporter(e.pid, e.name):
                if e.proc is not None and e.proc.poll() is not None:
                    break
                time.sleep(0.05)
            else:
                if _is_exporter(e.pid, e.name):
                    os.kill(e.pid, signal.SIGKILL)
            if e.proc is not None:
                e.proc.wait(timeout=10)
        self._pidfile(e.name).unlink(missing_ok=True)
        (self.run_dir / f"{e.name}.events").unlink(missing_ok=True)  # a function component's events cursor
        e.pid, e.proc, e.started_at = None, None, None

    def state(self, name: str) -> dict:
        with self.lock:
            e = self.exporters.get(name) or Exporter(name)
            running = e.pid is not None and self._alive(e)
            return {"running": running, "pid": e.pid if running else None,
                    "uptime_seconds": round(time.time() - e.started_at, 1) if running and e.started_at else None,
                    "restarts": e.restarts, "last_error": e.last_error, "crash_loop": e.crash_loop}

    def shutdown(self, stop_exporters: bool = False) -> None:
        """Stop supervising; the exporters keep running unless asked (a restarted admin adopts them). Asked,
        it stops every exporter with a pidfile in the run directory, whoever started it."""
        self.stopping.set()
        if self.thread:
            self.thread.join(timeout=5)
        if stop_exporters:
            with self.lock:
                for pidfile in self.run_dir.glob("*.pid"):  # also those started by an earlier admin
                    self.exporters.setdefault(pidfile.stem, Exporter(pidfile.stem))
                for e in self.exporters.values():  # signal them all first: they stop in parallel
                    if self._alive(e) and e.pid is not None:
                        os.kill(e.pid, signal.SIGTERM)
                for e in self.exporters.values():
                    self._stop(e)
