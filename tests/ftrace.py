"""The kernel's own record of an event, to check a collector's count against: a private ftrace instance
(its own buffer and filters, so it disturbs no other tracing), removed when the block ends."""
from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TRACEFS = Path("/sys/kernel/tracing")
TASK_UNINTERRUPTIBLE = 2  # sched_switch's prev_state for a D-state wait (TASK_REPORT bits)


class Trace:
    """Records one tracepoint's events that pass `filter` (ftrace's filter syntax) until stop()."""

    def __init__(self, event: str, filter: str) -> None:
        self.instance = TRACEFS / "instances" / f"lmp-test-{os.getpid()}-{id(self)}"
        self.instance.mkdir()
        self.event = self.instance / "events" / event.replace(":", "/")
        (self.event / "filter").write_text(filter + "\n")
        (self.event / "enable").write_text("1\n")
        self.lines: list[str] = []

    def stop(self) -> list[str]:
        """The events recorded; fails if the buffer lost any (a count that silently misses some is no
        ground truth)."""
        (self.event / "enable").write_text("0\n")
        for stats in sorted(self.instance.glob("per_cpu/cpu*/stats")):
            fields = dict(line.split(":", 1) for line in stats.read_text().splitlines() if ":" in line)
            lost = {k: int(v) for k, v in fields.items() if k in ("overrun", "commit overrun", "dropped events")}
            assert not any(lost.values()), f"ftrace lost events on {stats.parent.name}: {lost}"
        text = (self.instance / "trace").read_text()
        self.lines = [line for line in text.splitlines() if line and not line.startswith("#")]
        return self.lines

    def remove(self) -> None:
        self.instance.rmdir()


@contextmanager
def d_state_waits(filter: str = "") -> Iterator[Counter]:
    """Switches off the CPU in D state during the block, counted by thread id once it ends. Without a
    filter, every thread's: D-state switches are few enough that the buffer keeps them all."""
    waits: Counter = Counter()
    trace = Trace("sched:sched_switch", " && ".join(f for f in (f"prev_state == {TASK_UNINTERRUPTIBLE}", filter) if f))
    try:
        yield waits
        trace.stop()
        waits.update(int(tid) for line in trace.lines for tid in re.findall(r"prev_pid=(\d+)", line))
    finally:
        trace.remove()



@contextmanager
def switches_out(pid: int) -> Iterator[Counter]:
    """The thread's switches off the CPU during the block, counted by prev_state as ftrace prints it
    ("S", "D", "R+" for a preemption, ...). Switches out only: on this machine an instance missed the
    switches *in* on one CPU (next_pid == pid, from its idle task) while it kept those out."""
    states: Counter = Counter()
    trace = Trace("sched:sched_switch", f"prev_pid == {pid}")
    try:
        yield states
        trace.stop()
        states.update(m.group(1) for line in trace.lines if (m := re.search(r" prev_state=(\S+) ==>", line)))
    finally:
        trace.remove()
