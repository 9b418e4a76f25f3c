"""oomkill: two processes share a memory-limited cgroup; the one that allocates past the limit is not the
one the OOM killer picks. The exporter must name the victim, and the victim's cgroup, not the allocator's."""
from __future__ import annotations

import mmap
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporters._lib.decoders import cgroup2_root
from tests.conftest import delta

LIMIT_MB = 64
EACH_MB = 40  # victim and trigger together need 80 MiB, more than the limit; either alone fits
NAME = "lmp_oom_kills_total"
VICTIM, TRIGGER = "lmp-oom-victim", "lmp-oom-trigger"  # command names (15 characters at most)

# Names itself, waits to be placed in its cgroups, touches EACH_MB MiB, says so, waits.
CHILD = f"""
import mmap, sys
open("/proc/self/comm", "w").write(sys.argv[1])
sys.stdin.readline()
m = mmap.mmap(-1, {EACH_MB} << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(0, {EACH_MB} << 20, {mmap.PAGESIZE}):
    m[i] = 1
print("touched", flush=True)
sys.stdin.readline()
"""


def own_cgroup(controller: str) -> str:
    """This process's cgroup path in a v1 hierarchy (`memory`) or, for "", in the v2 one."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):  # "0::/path" is v2: its controller list is empty
            return path
    raise AssertionError(f"this process is in no {controller or 'v2'} cgroup")


@dataclass
class Groups:
    memory: Path  # cgroup v1 memory controller: the limit
    victim: Path  # cgroup v2 (the exporter's label): the victim's
    trigger: Path  # cgroup v2: the allocating process's
    v2_root: Path

    def label(self, group: Path) -> str:
        return "/" + str(group.relative_to(self.v2_root))


@pytest.fixture
def groups() -> Iterator[Groups]:
    """A memory cgroup limited to LIMIT_MB under this test's own memory cgroup, and two v2 cgroups under its
    own v2 cgroup; all removed afterwards."""
    memory_root = Path("/sys/fs/cgroup/memory")
    assert (memory_root / "cgroup.procs").exists(), "expects the cgroup v1 memory controller (hybrid mode)"
    v2_root = cgroup2_root()  # /sys/fs/cgroup/unified here (hybrid), /sys/fs/cgroup on pure v2 hosts
    tag = f"lmp-test-oom-{os.getpid()}"
    made = Groups(memory_root / own_cgroup("memory").lstrip("/") / tag,
                  v2_root / own_cgroup("").lstrip("/") / f"{tag}-victim",
                  v2_root / own_cgroup("").lstrip("/") / f"{tag}-trigger", v2_root)
    created = []
    try:
        for group in (made.memory, made.victim, made.trigger):
            group.mkdir()
            created.append(group)
        limit = str(LIMIT_MB << 20)
        (made.memory / "memory.limit_in_bytes").write_text(limit)
        if (made.memory / "memory.memsw.limit_in_bytes").exists():  # memory + swap: no escape into swap
            (made.memory / "memory.memsw.limit_in_bytes").write_text(limit)
        if len(Path("/proc/swaps").read_text().splitlines()) > 1:  # swap is on: do not let it save anyone
            (made.memory / "memory.swappiness").write_text("0")
        yield made
    finally:
        for group in reversed(created):
            group.rmdir()


def oom_kills(memory_group: Path) -> int:
    """The kernel's own count of OOM kills in a v1 memory cgroup."""
    line = next(l for l in (memory_group / "memory.oom_control").read_text().splitlines() if l.startswith("oom_kill "))
    return int(line.split()[1])


def start(comm: str, memory: Path, v2: Path, oom_score_adj: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, comm], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    (memory / "cgroup.procs").write_text(str(proc.pid))  # before it allocates: charged to the limit
    (v2 / "cgroup.procs").write_text(str(proc.pid))
    Path(f"/proc/{proc.pid}/oom_score_adj").write_text(str(oom_score_adj))
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return proc


def test_the_victim_is_named_with_its_own_cgroup(exporter, groups):
    labelled = exporter("oomkill")
    plain = exporter("oomkill", "-o", "cgroup=false")
    before, before_plain = labelled.scrape(), plain.scrape()
    kills_before = oom_kills(groups.memory)
    procs = []
    try:
        # The victim takes its 40 MiB first and offers itself (oom_score_adj 1000: the OOM killer's first
        # choice); the trigger then allocates past the limit and is the task running when the kill happens.
        procs.append(start(VICTIM, groups.memory, groups.victim, 1000))
        assert procs[0].stdout.readline().strip() == "touched"
        procs.append(start(TRIGGER, groups.memory, groups.trigger, 0))
        assert procs[1].stdout.readline().strip() == "touched"  # it got its memory: the victim's
        assert procs[0].wait(timeout=30) == -signal.SIGKILL
        procs[1].stdin.close()
        assert procs[1].wait(timeout=30) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    after, after_plain = labelled.scrape(), plain.scrape()

    assert oom_kills(groups.memory) - kills_before == 1  # the kernel's count: one kill, in this cgroup
    assert delta(before, after, NAME, comm=VICTIM, cgroup=groups.label(groups.victim)) == 1
    assert delta(before_plain, after_plain, NAME, comm=VICTIM) == 1
    # Not the allocating task, not its cgroup (which bpf_get_current_cgroup_id() would have given).
    samples = after.families["lmp_oom_kills"].samples
    assert not [s for s in samples if s.labels["comm"] == TRIGGER or s.labels["cgroup"] == groups.label(groups.trigger)]
    assert all("cgroup" not in s.labels for s in after_plain.families["lmp_oom_kills"].samples)
