"""syscalls: the counts must match a workload whose calls we know exactly."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import delta

RARE_CALLS = 23   # sched_get_priority_min: nothing else on a host calls it
MISSING_OPENS = 17  # openat on a path that does not exist: ENOENT
HANDLED_SIGNALS = 9  # each handler's return is an rt_sigreturn, whose exit the kernel reports as syscall -1

# The workload waits on stdin so that exporters can be started (and filtered) on its PID first.
WORKLOAD = f"""
import os, signal, sys
signal.signal(signal.SIGUSR1, lambda *_: None)
sys.stdin.readline()
for _ in range({HANDLED_SIGNALS}):
    os.kill(os.getpid(), signal.SIGUSR1)
for _ in range({RARE_CALLS}):
    os.sched_get_priority_min(os.SCHED_OTHER)
for _ in range({MISSING_OPENS}):
    try:
        open("/nonexistent/lmp-test", "rb")
    except FileNotFoundError:
        pass
print("done", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def workload():
    proc = subprocess.Popen([sys.executable, "-c", WORKLOAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)

    def go() -> None:
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"

    yield proc, go
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0


def test_counts_match_workload_exactly(exporter, workload):
    proc, go = workload
    everyone = exporter("syscalls")
    only_it = exporter("syscalls", "-o", f"filter_tgid={proc.pid}")
    before_all, before_it = everyone.scrape(), only_it.scrape()
    go()
    after_all, after_it = everyone.scrape(), only_it.scrape()

    rare = "sched_get_priority_min"
    assert delta(before_all, after_all, "lmp_syscalls_total", syscall=rare) == RARE_CALLS
    assert delta(before_it, after_it, "lmp_syscalls_total", syscall=rare) == RARE_CALLS
    enoent = {"syscall": "openat", "errno": "ENOENT"}
    assert delta(before_it, after_it, "lmp_syscall_errors_total", **enoent) == MISSING_OPENS
    # The filtered exporter saw the workload's openat calls and nothing from other processes.
    assert delta(before_it, after_it, "lmp_syscalls_total", syscall="openat") == MISSING_OPENS
    assert delta(before_all, after_all, "lmp_syscall_errors_total", **enoent) >= MISSING_OPENS
    assert "lmp_syscall_latency_seconds" not in after_all.families  # off by default
    # The signal handlers' returns (syscall -1 at exit) are neither counted nor taken for overflow.
    assert delta(before_it, after_it, "lmp_syscalls_total", syscall="kill") == HANDLED_SIGNALS
    assert delta(before_it, after_it, "lmp_exporter_map_overflow_total", map="syscalls_total") == 0


def test_latency_option_times_each_call(exporter, workload):
    proc, go = workload
    timed = exporter("syscalls", "-o", "latency=true", "-o", f"filter_tgid={proc.pid}")
    before = timed.scrape()
    go()
    after = timed.scrape()
    name = "lmp_syscall_latency_seconds"
    rare = {"syscall": "sched_get_priority_min"}
    assert delta(before, after, f"{name}_count", **rare) == RARE_CALLS
    spent = delta(before, after, f"{name}_sum", **rare)
    # Each call takes well under a millisecond and more than nothing.
    assert 0 < spent / RARE_CALLS < 1e-3
    assert delta(before, after, f"{name}_count", syscall="openat") == MISSING_OPENS
    # The trace-only sys_enter probe is attached as well.
    assert after.value("lmp_exporter_program_attached", hook="raw_syscalls:sys_enter") == 1


def test_cgroup_option_counts_each_cgroup_exactly(exporter, cgroup, workload):  # its workload ends first
    """The workload alone in a cgroup of ours: that cgroup's series count its calls and errors exactly, the
    host's other cgroups do not share them, and the calls come from the (cgroup, syscall) hash."""
    proc, go = workload
    group_dir, group_path = cgroup
    by_cgroup = exporter("syscalls", "-o", "cgroup=true")
    (group_dir / "cgroup.procs").write_text(str(proc.pid))
    before = by_cgroup.scrape()
    go()
    after = by_cgroup.scrape()

    rare = "sched_get_priority_min"
    assert delta(before, after, "lmp_syscalls_total", syscall=rare, cgroup=group_path) == RARE_CALLS
    assert delta(before, after, "lmp_syscalls_total", syscall="openat", cgroup=group_path) == MISSING_OPENS
    assert delta(before, after, "lmp_syscalls_total", syscall="kill", cgroup=group_path) == HANDLED_SIGNALS
    assert delta(before, after, "lmp_syscall_errors_total", syscall="openat", errno="ENOENT",
                 cgroup=group_path) == MISSING_OPENS
    # Nobody else calls the rare one: every other cgroup's series of it stayed where it was.
    others = [s for s in after.families["lmp_syscalls"].samples
              if s.labels["syscall"] == rare and s.labels["cgroup"] != group_path]
    assert all(s.value == before.value("lmp_syscalls_total", 0.0, **s.labels) for s in others)
    # Every series has the label; the cgroup is one lmp_cgroup_info names, for joins.
    assert all("cgroup" in s.labels for s in after.families["lmp_syscalls"].samples)
    assert after.value("lmp_cgroup_info", cgroup=group_path) == 1
    assert after.value("lmp_exporter_map_capacity", map="syscalls_total_by_cgroup") == 16384
    assert after.value("lmp_exporter_map_entries", map="syscalls_total_by_cgroup") > 0
    assert delta(before, after, "lmp_exporter_map_overflow_total", map="syscalls_total_by_cgroup") == 0


def test_without_the_option_no_cgroup_and_no_hash(exporter):
    """The default reads the per-syscall array; the hash the cgroup option would use is left at one entry."""
    plain = exporter("syscalls")
    scrape = plain.scrape()
    assert all("cgroup" not in s.labels for s in scrape.families["lmp_syscalls"].samples)
    assert "lmp_cgroup_info" not in scrape.families
    def bpftool(*args: str) -> list[dict]:
        return json.loads(subprocess.run(["bpftool", "-j", *args], check=True, capture_output=True, text=True).stdout)
    ids = {i for prog in bpftool("prog", "show") if prog["id"] in plain.programs for i in prog.get("map_ids", ())}
    held = {m["name"]: m["max_entries"] for m in bpftool("map", "show") if m["id"] in ids}
    assert held["syscalls_total"] == 1024
    assert held["syscalls_total_"] == 1, held  # syscalls_total_by_cgroup: the kernel keeps 15 characters of a name
