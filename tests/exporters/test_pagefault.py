"""pagefault: a process in a cgroup of its own takes faults we can count page by page, and the
exporter must count them under that cgroup, in the right mode, access and cause."""
from __future__ import annotations

import mmap
import subprocess
import sys

import pytest

from tests.conftest import delta

PAGE = mmap.PAGESIZE
USER_WRITES = 2000   # fresh anonymous pages the child writes one byte to: a user fault each
KERNEL_WRITES = 1000  # fresh anonymous pages the kernel fills from /dev/zero: a kernel fault each
COW_WRITES = 500     # pages of a private file mapping, read first, then written: copy-on-write
SLACK = 100          # faults of the interpreter itself between the scrapes (none, in practice)
NAME = "lmp_page_faults_total"

# Each phase is one kind of fault; MADV_NOHUGEPAGE keeps one fault per 4 KiB page (no THP, no mTHP).
WORKLOAD = f"""
import mmap, sys
PAGE = {PAGE}
def fresh(pages):
    m = mmap.mmap(-1, pages * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    m.madvise(mmap.MADV_NOHUGEPAGE)
    return m
with open(sys.argv[1], "rb") as f:
    cow = mmap.mmap(f.fileno(), {COW_WRITES} * PAGE, flags=mmap.MAP_PRIVATE,
                    prot=mmap.PROT_READ | mmap.PROT_WRITE)
user, kernel = fresh({USER_WRITES}), fresh({KERNEL_WRITES})
print("ready", flush=True)  # start-up's own faults are behind us
sys.stdin.readline()
for i in range({USER_WRITES}):
    user[i * PAGE] = 1
with open("/dev/zero", "rb", buffering=0) as zero:
    assert zero.readinto(kernel) == {KERNEL_WRITES} * PAGE  # read() faults each page in, in kernel mode
for i in range({COW_WRITES}):
    cow[i * PAGE]  # maps the page-cache page read-only
for i in range({COW_WRITES}):
    cow[i * PAGE] = 1  # write to a present read-only page: the private copy is made here
print("done", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def workload(cgroup, tmp_path):
    """The child, moved into the cgroup, started up and waiting; go() runs its loops."""
    group_dir, _ = cgroup
    data = tmp_path / "cow.data"
    data.write_bytes(b"l" * COW_WRITES * PAGE)
    proc = subprocess.Popen([sys.executable, "-c", WORKLOAD, str(data)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        (group_dir / "cgroup.procs").write_text(str(proc.pid))
        assert proc.stdout.readline().strip() == "ready"

        def go() -> None:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "done"

        yield go
    finally:
        proc.stdin.close()
        if proc.wait(timeout=30) != 0:
            raise AssertionError(f"workload exited with {proc.returncode}")


def test_faults_are_counted_by_cgroup_mode_access_and_cause(exporter, cgroup, workload):
    _, group = cgroup
    per_cgroup = exporter("pagefault")
    host = exporter("pagefault", "-o", "cgroup=false")
    before, before_host = per_cgroup.scrape(), host.scrape()
    workload()
    after, after_host = per_cgroup.scrape(), host.scrape()

    def faults(mode: str, access: str, cause: str) -> float:
        return delta(before, after, NAME, cgroup=group, mode=mode, access=access, cause=cause)

    user = faults("user", "write", "not_present")
    assert USER_WRITES <= user < USER_WRITES + SLACK
    kernel = faults("kernel", "write", "not_present")
    assert KERNEL_WRITES <= kernel < KERNEL_WRITES + SLACK
    cow = faults("user", "write", "protection")
    assert COW_WRITES <= cow < COW_WRITES + SLACK
    # The reads of the file mapping fault too, fewer than one per page (the kernel maps the pages
    # around a faulting one at once: fault-around); none of them is a write.
    assert 1 <= faults("user", "read", "not_present") <= COW_WRITES + SLACK

    # Without the option, the same faults are in the host-wide series, and no series has a cgroup.
    host_user = delta(before_host, after_host, NAME, mode="user", access="write", cause="not_present")
    assert host_user >= USER_WRITES
    assert all("cgroup" not in s.labels for s in after_host.families["lmp_page_faults"].samples)
