"""offcpu: a process's sleeps, its uninterruptible disk waits and CPU hogs' preemptions must show up with
the reason, the count and the duration the workload gives them."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from testkit.workloads import cpu_hogs
from tests.conftest import delta
from tests.ftrace import D_STATE, switches_out

NAME = "lmp_offcpu_duration_seconds"
SLEEPS, NAP = 7, 0.05  # seven 50 ms sleeps: each lands in (2^25, 2^26] ns, or the next bucket if late
WRITES = 31  # synchronous O_DIRECT writes of 1 MiB: most wait for the disk in uninterruptible sleep
BLOCK = 1 << 20
LOW, HIGH = 2**25 * 1e-9, 2**27 * 1e-9  # 33.5 ms and 134 ms: bucket bounds around a 50 ms sleep

# The workload says it is ready, then waits on stdin so that exporters can be started (and filtered) on
# its PID: that wait began before they attached, so it is not timed.
WORKLOAD = f"""
import mmap, os, sys, time
print("ready", flush=True)
sys.stdin.readline()
if sys.argv[1] == "sleep":
    for _ in range({SLEEPS}):
        time.sleep({NAP})
else:
    buf = mmap.mmap(-1, {BLOCK})  # O_DIRECT needs an aligned buffer; mmap gives whole pages
    buf.write(b"l" * {BLOCK})
    fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
    for i in range({WRITES}):
        os.pwrite(fd, buf, i * {BLOCK})
    os.close(fd)
print("done", flush=True)
sys.stdin.readline()
"""


class Workload:
    def __init__(self, *args: str, cgroup_dir: Path | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WORKLOAD, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        if cgroup_dir is not None:
            (cgroup_dir / "cgroup.procs").write_text(str(self.proc.pid))
        assert self.proc.stdout.readline().strip() == "ready"

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "done"

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            assert self.proc.wait(timeout=10) == 0
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def naps(before, after, **labels: str) -> float:
    """Off-CPU periods between 33.5 ms and 134 ms: where a 50 ms sleep lands."""
    return (after.bucket(NAME, HIGH, **labels) - before.bucket(NAME, HIGH, default=0.0, **labels)) - \
           (after.bucket(NAME, LOW, **labels) - before.bucket(NAME, LOW, default=0.0, **labels))


def blocked(pid: int) -> None:
    """Until the process sleeps (the workload's next wait for a line)."""
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "S":
        assert time.monotonic() < deadline, f"{pid} did not go back to sleep"
        time.sleep(0.01)


def test_sleeps_are_timed_by_process_and_by_cgroup(exporter, cgroup):
    group_dir, group_path = cgroup
    work = Workload("sleep", cgroup_dir=group_dir)
    try:
        only_it = exporter("offcpu", "-o", f"filter_tgid={work.proc.pid}")
        by_cgroup = exporter("offcpu", "-o", "cgroup=true")
        before_it, before_cg = only_it.scrape(), by_cgroup.scrape()
        with switches_out(f"prev_pid == {work.proc.pid}") as kernel:
            work.go()
            blocked(work.proc.pid)
        after_it, after_cg = only_it.scrape(), by_cgroup.scrape()
    finally:
        work.close()

    # Seven sleeps are seven switches out in S state, unless the thread is preempted between asking to
    # sleep and sleeping (seen once with the CPUs loaded): it may stay off the CPU until its timer has
    # expired, and that sleep is preempted time, or come back and sleep what is left. The kernel's own
    # switches say which; the last S one is the wait for the test's next line, not over at the scrape.
    sleeps = kernel[work.proc.pid, "S"] - 1
    preempted = sum(n for (_, state), n in kernel.items() if state.startswith("R"))
    assert SLEEPS - preempted <= sleeps <= SLEEPS
    sleeping = {"reason": "sleeping"}
    # The filtered exporter saw this process alone: its sleeps and no other wait of it ended.
    assert delta(before_it, after_it, f"{NAME}_count", **sleeping) == sleeps
    assert sleeps - preempted <= naps(before_it, after_it, **sleeping) <= sleeps
    slept = delta(before_it, after_it, f"{NAME}_sum", **sleeping)
    assert (sleeps - preempted) * NAP <= slept <= sleeps * HIGH
    assert "cgroup" not in next(s for s in after_it.families[NAME].samples).labels  # off by default
    # The cgroup label names the cgroup the process ran in, and nothing else ran there.
    in_group = {"reason": "sleeping", "cgroup": group_path}
    assert delta(before_cg, after_cg, f"{NAME}_count", **in_group) == sleeps
    assert sleeps - preempted <= naps(before_cg, after_cg, **in_group) <= sleeps


def test_direct_writes_wait_uninterruptibly(exporter, disk_dir):
    folder = disk_dir
    work = Workload("write", str(folder / "data"))
    try:
        only_it = exporter("offcpu", "-o", f"filter_tgid={work.proc.pid}")
        before = only_it.scrape()
        with switches_out(f"prev_pid == {work.proc.pid} && {D_STATE}") as kernel:
            work.go()
        after = only_it.scrape()
    finally:
        work.close()
    waits = delta(before, after, f"{NAME}_count", reason="uninterruptible")
    waited = delta(before, after, f"{NAME}_sum", reason="uninterruptible")
    # A synchronous O_DIRECT write sleeps in D state until the disk's completion wakes it, unless the
    # virtual disk completes it while the guest is still notifying it (seen here: 7 to 32 waits for 32
    # writes of 1 MiB; 1 to 68 for 64 of 4 KiB). So the count is the kernel's own, and more than none.
    assert waits == kernel[work.proc.pid, "D"] > 0
    assert 0 < waited / waits < 1.0
    sleeping = {"reason": "sleeping"}
    assert after.value(f"{NAME}_count", 0.0, **sleeping) == before.value(f"{NAME}_count", 0.0, **sleeping)  # D-state waits are not mistaken for interruptible sleeps


def test_cpu_hogs_sharing_a_cpu_are_preempted(exporter, cgroup):
    group_dir, group_path = cgroup
    offcpu = exporter("offcpu", "-o", "cgroup=true")
    before = offcpu.scrape()
    hogs = cpu_hogs(2, 1.0, cgroup_dir=group_dir)
    after = offcpu.scrape()
    preempted = {"reason": "preempted", "cgroup": group_path}
    # Two hogs on one CPU: one of them is always waiting. The kernel's per-task statistics say how long:
    # in the spin, where they never sleep, every wait is a preemption; before it (starting Python) a
    # wait may follow a sleep instead, which is not a preemption.
    waited = delta(before, after, f"{NAME}_sum", **preempted)
    spin, lifetime = (sum(getattr(h, f) for h in hogs) * 1e-9 for f in ("waited_ns", "lifetime_waited_ns"))
    assert spin >= 0.4  # the workload did make them wait
    assert 0.98 * spin <= waited <= lifetime + 1e-3
    assert delta(before, after, f"{NAME}_count", **preempted) >= sum(h.waits for h in hogs)
