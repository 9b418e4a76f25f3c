"""runqlat: three CPU-bound processes sharing one CPU must wait for it, and the histogram must say so."""
from __future__ import annotations

import os
import subprocess
import time

from tests.conftest import delta

HOGS = 3
SECONDS = 2.0
NAME = "lmp_runqueue_latency_seconds"


def test_three_hogs_on_one_cpu_wait_in_the_run_queue(exporter):
    runqlat = exporter("runqlat")
    cpu = max(os.sched_getaffinity(0))
    before = runqlat.scrape()
    hogs = [subprocess.Popen(["taskset", "-c", str(cpu), "timeout", str(SECONDS), "sh", "-c", "while :; do :; done"])
            for _ in range(HOGS)]
    started = time.monotonic()
    for hog in hogs:
        hog.wait(timeout=30)
    elapsed = time.monotonic() - started
    after = runqlat.scrape()

    count = delta(before, after, f"{NAME}_count")
    waited = delta(before, after, f"{NAME}_sum")
    # With three runnable hogs on one CPU, two are always waiting: about 2 x elapsed seconds of waiting.
    assert waited >= 0.75 * (HOGS - 1) * SECONDS, f"only {waited:.2f} s of run-queue wait"
    assert waited <= HOGS * elapsed + 1.0  # the hogs' waits, and other threads stuck behind them
    assert count >= 100  # the scheduler switches between them every few milliseconds
    assert waited / count >= 1e-3, f"mean wait {waited / count * 1e3:.2f} ms"
    # Most of that wait is in waits of a millisecond or more.
    short = after.bucket(NAME, 2**20 * 1e-9) - before.bucket(NAME, 2**20 * 1e-9, default=0.0)
    assert count - short >= HOGS * 10
