"""oomkill: two processes share a memory-limited cgroup; the one that allocates past the limit is not the
one the OOM killer picks. The exporter must name the victim, and the victim's cgroup, not the allocator's."""
from __future__ import annotations

import mmap
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.workloads import LIMIT_MB, TRIGGER, VICTIM, OomGroups, cgroup_oom_kills, oom_groups, oom_kill
from tests.conftest import delta

NAME = "lmp_oom_kills_total"


@pytest.fixture
def groups() -> Iterator[OomGroups]:
    with oom_groups() as made:
        yield made


def test_the_victim_is_named_with_its_own_cgroup(exporter, groups):
    labelled = exporter("oomkill")
    plain = exporter("oomkill", "-o", "cgroup=false")
    before, before_plain = labelled.scrape(), plain.scrape()
    kills_before = cgroup_oom_kills(groups.memory)
    oom_kill(groups)
    after, after_plain = labelled.scrape(), plain.scrape()

    assert cgroup_oom_kills(groups.memory) - kills_before == 1  # the kernel's count: one kill, in this cgroup
    assert delta(before, after, NAME, comm=VICTIM, cgroup=groups.label(groups.victim)) == 1
    assert delta(before_plain, after_plain, NAME, comm=VICTIM) == 1
    # Not the allocating task, not its cgroup (which bpf_get_current_cgroup_id() would have given).
    samples = after.families["lmp_oom_kills"].samples
    assert not [s for s in samples if s.labels["comm"] == TRIGGER or s.labels["cgroup"] == groups.label(groups.trigger)]
    assert all("cgroup" not in s.labels for s in after_plain.families["lmp_oom_kills"].samples)


# Names itself, waits to be placed in its cgroups, then touches pages past the memory cgroup's limit until
# the OOM killer ends it.
GREEDY = f"""
import mmap, sys
open("/proc/self/comm", "w").write(sys.argv[1])
sys.stdin.readline()
m = mmap.mmap(-1, {2 * LIMIT_MB} << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(0, {2 * LIMIT_MB} << 20, {mmap.PAGESIZE}):
    m[i] = 1
"""
KEEP = "lmp-oom-keep"  # a command name a task still runs under when its OOM-killed namesakes are gone
ONCE = 20  # command names killed once each
BUDGET = 8
FORGET = 2  # seconds


def killed_as(groups: OomGroups, comm: str) -> None:
    """A process named `comm`, alone in the limited cgroup, allocates until the OOM killer ends it."""
    proc = subprocess.Popen([sys.executable, "-c", GREEDY, comm], stdin=subprocess.PIPE, text=True)
    try:
        (groups.memory / "cgroup.procs").write_text(str(proc.pid))
        (groups.victim / "cgroup.procs").write_text(str(proc.pid))
        Path(f"/proc/{proc.pid}/oom_score_adj").write_text("1000")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == -signal.SIGKILL, comm
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def kills(scrape, comm: str | None = None) -> float:
    family = scrape.families.get("lmp_oom_kills")
    return sum(s.value for s in (family.samples if family else ()) if comm is None or s.labels["comm"] == comm)


def test_command_names_are_budgeted_and_those_no_task_runs_are_forgotten(exporter, groups):
    """ONCE + 1 command names OOM-killed (KEEP three times, while a namesake lives on): above the budget the
    least killed fold into comm="other", every kill counted as the kernel counted them; once no task runs
    under a name, its key leaves the map and its series ends after forget_after, KEEP's stays exact."""
    oom = exporter("oomkill", "-o", f"series_budget={BUDGET}", "-o", f"forget_after={FORGET}")
    keeper = subprocess.Popen([sys.executable, "-c", f"import sys\nopen('/proc/self/comm', 'w').write('{KEEP}')\n"
                               "print('named', flush=True)\nsys.stdin.read()\n"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert keeper.stdout.readline().strip() == "named"
        before = cgroup_oom_kills(groups.memory)
        for i in range(ONCE):
            killed_as(groups, f"lmp-oom-{i}")
        for _ in range(3):
            killed_as(groups, KEEP)
        assert cgroup_oom_kills(groups.memory) - before == ONCE + 3  # the kernel's own count
        scrape = oom.scrape()
        assert scrape.value("lmp_exporter_series", collector="oomkill") <= BUDGET
        assert kills(scrape) == ONCE + 3  # `other` included: nothing lost, nothing twice
        assert scrape.value(NAME, comm=KEEP, cgroup=groups.label(groups.victim)) == 3  # the most killed: its own
        assert kills(scrape, "other") >= ONCE - BUDGET  # the least killed, folded
        assert scrape.value("lmp_exporter_folded_values_total", collector="oomkill") > 0
        named = {s.labels["comm"] for s in scrape.families["lmp_oom_kills"].samples} - {"other", KEEP}
        oom.scrape()  # the second pass that finds no task named so deletes their keys
        time.sleep(FORGET + 0.5)
        last = oom.scrape()
        assert not named & {s.labels["comm"] for s in last.families["lmp_oom_kills"].samples}
        assert last.value(NAME, comm=KEEP, cgroup=groups.label(groups.victim)) == 3
        assert last.value("lmp_exporter_map_entries", map="oom_kills_total") == 1  # KEEP's key alone
        assert kills(last) == kills(scrape) - sum(kills(scrape, comm) for comm in named)  # the ended took theirs
    finally:
        keeper.kill()
        keeper.wait()
