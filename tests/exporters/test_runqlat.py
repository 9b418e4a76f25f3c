"""runqlat: three CPU-bound processes sharing one CPU must wait for it, and the histogram must hold at
least the waits the kernel's own per-task statistics (/proc/PID/schedstat) counted for them."""
from __future__ import annotations

from testkit.workloads import cpu_hogs
from tests.conftest import delta

HOGS = 3
SECONDS = 2.0
NAME = "lmp_runqueue_latency_seconds"


def test_three_hogs_on_one_cpu_wait_in_the_run_queue(exporter):
    runqlat = exporter("runqlat")
    before = runqlat.scrape()
    hogs = cpu_hogs(HOGS, SECONDS)
    after = runqlat.scrape()

    count = delta(before, after, f"{NAME}_count")
    waited = delta(before, after, f"{NAME}_sum")
    # The histogram is the host's: the hogs' waits, and every other thread's. The kernel's statistics time
    # each wait from a moment next to the tracepoints this collector uses, so they agree within microseconds.
    hogs_waited = sum(h.waited_ns for h in hogs) * 1e-9
    assert hogs_waited >= (HOGS - 1) * SECONDS / 2  # the workload did make them wait
    assert waited >= 0.98 * hogs_waited, f"{waited:.3f} s of run-queue wait, the hogs alone {hogs_waited:.3f} s"
    assert count >= sum(h.waits for h in hogs)
    # A hog waits for the other hogs' time slices, milliseconds, where most waits of other threads are
    # microseconds: waits of a millisecond or more are there.
    short = after.bucket(NAME, 2**20 * 1e-9) - before.bucket(NAME, 2**20 * 1e-9, default=0.0)
    assert count - short >= HOGS * 10
