"""Function components' events into the audit log: connguard's refusals, each with its pid and command.

The admin pulls them every second from the running components `lmp run`'s supervisor lists. So that a process that retries a refused connect() in a loop
cannot flood the log, one pull's identical events (same verdict, destination, process and cgroup) become
one row with a count, at most MAX_ROWS rows are written per component per pull, and whatever is left out
is said in one more row (the component's metrics count every refusal)."""
from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from flask import Flask

from exporters._lib import catalog
from exporters._lib.serving import Reach
from lmp.supervisor import state

from .models import audit, db

MAX_ROWS = 50
TARGET_LENGTH = 128  # the audit log's target column
ACTIONS = {"refused": "refused connect", "would_refuse": "would refuse connect (observe)"}


def rows(name: str, events: list[dict[str, Any]], dropped: int) -> list[tuple[str, str, str]]:
    """(actor, action, target) rows for one pull of `name`'s events, oldest first."""
    counts = Counter((e.get("verdict", ""), e.get("destination", ""), e.get("pid", 0), e.get("comm", ""),
                      e.get("cgroup", "")) for e in events)
    out = []
    for (verdict, destination, pid, comm, cgroup), n in list(counts.items())[:MAX_ROWS]:
        times = f" x{n}" if n > 1 else ""
        target = f"{destination} by pid {pid} ({comm}){times} in {cgroup}"
        out.append((name, ACTIONS.get(verdict, f"{verdict} connect"), target[:TARGET_LENGTH]))
    left = sum(n for _, n in list(counts.items())[MAX_ROWS:]) + dropped
    if left:
        out.append((name, "events not logged", f"{left} more events; its metrics count them all"))
    return out


def recorder(app: Flask) -> Callable[[str, list[dict[str, Any]], int], None]:
    """The supervisor's callback: write a pull's events into the audit log, in the app's database."""
    def record(name: str, events: list[dict[str, Any]], dropped: int) -> None:
        with app.app_context():
            for actor, action, target in rows(name, events, dropped):
                audit(actor, action, target)
            db.session.commit()
    return record


class Puller:
    """Pulls each running component's new events from its /events, remembering where it got to per
    process (in the run directory, so that a restarted admin neither repeats nor skips events)."""

    def __init__(self, run_dir: Path, on_events: Callable[[str, list[dict[str, Any]], int], None]) -> None:
        self.run_dir, self.on_events = run_dir, on_events
        self.has_events: dict[str, bool] = {}

    def _cursor(self, name: str) -> tuple[int, int]:
        try:
            pid, after = (int(v) for v in (self.run_dir / f"{name}.events").read_text().split())
            return pid, after
        except (OSError, ValueError):
            return 0, 0

    def pull(self, running: list[tuple[str, int, str]]) -> None:
        """`running`: (name, pid, listen) of each exporter that runs now."""
        for name, pid, listen in running:
            if name not in self.has_events:
                try:
                    self.has_events[name] = bool(catalog.load(name).events)
                except (KeyError, ValueError):
                    self.has_events[name] = False
            if not self.has_events[name]:
                continue
            last_pid, after = self._cursor(name)
            reach = Reach.of_run_dir(self.run_dir)  # HTTPS and basic auth as `lmp run` set them up, or neither
            try:
                with reach.open(reach.url(listen, f"/events?after={after if last_pid == pid else 0}"), 2) as response:
                    page = json.load(response)
            except (OSError, ValueError):
                continue  # starting, or busy: the next pull gets them
            if page.get("pid") != pid:
                continue  # not the process we started (yet): its port answers for another
            if page["events"] or page["dropped"]:
                self.on_events(name, page["events"], page["dropped"])
            (self.run_dir / f"{name}.events").write_text(f"{pid} {page['next']}\n")


class AuditFeed:
    """A thread of the admin's: every second, the new events of each running component that has any."""

    def __init__(self, app: Flask) -> None:
        self.run_dir = Path(app.config.get("RUN_DIR", "/run/lmp"))
        self.puller = Puller(self.run_dir, recorder(app))
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="lmp-audit-feed")
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping.wait(1.0):
            children = state(self.run_dir).get("children", {})
            self.puller.pull([(name, c["pid"], c["listen"]) for name, c in children.items()
                              if c.get("running") and c.get("pid") and c.get("listen")])

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
