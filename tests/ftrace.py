"""The kernel's own record of an event, to check a collector's count against: a private ftrace instance
(its own buffer and filters, so it disturbs no other tracing), removed when the block ends."""
from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from exporters._lib.bpf import TRACEFS

D_STATE = "prev_state == 2"  # a switch out into a D-state wait (TASK_UNINTERRUPTIBLE, TASK_REPORT bits)


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
def switches_out(filter: str) -> Iterator[Counter]:
    """Switches off the CPU during the block that pass `filter` (on sched_switch's fields, e.g.
    "prev_pid == 42", "prev_state == 2"), counted by (thread id, prev_state as ftrace prints it: "S",
    "D", "R+" for a preemption, ...) once the block ends. Switches out only: on this machine an
    instance missed the switches *in* on one CPU (next_pid, from its idle task) while it kept those out.
    A filter matching every thread's D-state switches is fine: they are few enough for the buffer."""
    switches: Counter = Counter()
    trace = Trace("sched:sched_switch", filter)
    try:
        yield switches
        trace.stop()
        switches.update((int(m.group(1)), m.group(2)) for line in trace.lines
                        if (m := re.search(r" prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==>", line)))
    finally:
        trace.remove()
