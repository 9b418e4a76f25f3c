"""fileio: a process that writes and reads a file in known chunks must show exactly those bytes and calls."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, delta

CHUNK = 1 << 20     # os.write / os.read of 1 MiB, WRITES times each way: the 13 MiB
WRITES = 13
PWRITES, PWRITE_SIZE = 7, 4096  # pwrite64 over the start of the file
PREADS, PREAD_SIZE = 5, 3000   # pread64
WRITTEN = WRITES * CHUNK + PWRITES * PWRITE_SIZE
READ = WRITES * CHUNK + PREADS * PREAD_SIZE

# The workload says "ready", then waits for SIGUSR1 (sigwait: no read or write) so exporters can be started
# and filtered on its PID first; after the signal it makes only the reads and writes counted above and exits.
WORKLOAD = f"""
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGUSR1}})
chunk = b"l" * {CHUNK}
print("ready", flush=True)
signal.sigwait({{signal.SIGUSR1}})
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
for _ in range({WRITES}):
    assert os.write(fd, chunk) == {CHUNK}
for i in range({PWRITES}):
    assert os.pwrite(fd, chunk[:{PWRITE_SIZE}], i * {PWRITE_SIZE}) == {PWRITE_SIZE}
for i in range({PREADS}):
    assert len(os.pread(fd, {PREAD_SIZE}, i * {PREAD_SIZE})) == {PREAD_SIZE}
os.lseek(fd, 0, os.SEEK_SET)
for _ in range({WRITES}):
    assert len(os.read(fd, {CHUNK})) == {CHUNK}
os.close(fd)
"""


@pytest.fixture
def workload():
    folder = Path(tempfile.mkdtemp(dir=ROOT, prefix=".fileiotest-"))  # the repo's disk, removed afterwards
    proc = subprocess.Popen([sys.executable, "-c", WORKLOAD, str(folder / "data")], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"

        def go() -> None:
            proc.send_signal(signal.SIGUSR1)
            assert proc.wait(timeout=60) == 0  # it has exited: every call it made has returned

        yield proc, go
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        shutil.rmtree(folder)


def test_bytes_and_calls_match_workload_exactly(exporter, workload):
    proc, go = workload
    everyone = exporter("fileio")
    only_it = exporter("fileio", "-o", f"filter_tgid={proc.pid}")
    before_all, before_it = everyone.scrape(), only_it.scrape()
    go()
    after_all, after_it = everyone.scrape(), only_it.scrape()

    read, write = {"op": "read"}, {"op": "write"}
    assert delta(before_it, after_it, "lmp_file_io_bytes_total", **write) == WRITTEN
    assert delta(before_it, after_it, "lmp_file_io_bytes_total", **read) == READ
    assert delta(before_it, after_it, "lmp_file_io_calls_total", **write) == WRITES + PWRITES
    assert delta(before_it, after_it, "lmp_file_io_calls_total", **read) == WRITES + PREADS
    # Every call entered after the exporter started, so every one was timed.
    name = "lmp_file_io_latency_seconds"
    for op, calls in ((write, WRITES + PWRITES), (read, WRITES + PREADS)):
        assert delta(before_it, after_it, f"{name}_count", **op) == calls
        spent = delta(before_it, after_it, f"{name}_sum", **op)
        assert 0 < spent / calls < 1.0  # copying up to 1 MiB takes more than nothing and less than a second
    # The unfiltered exporter saw the workload too, among everything else on the host.
    assert delta(before_all, after_all, "lmp_file_io_bytes_total", **write) >= WRITTEN
    assert delta(before_all, after_all, "lmp_file_io_bytes_total", **read) >= READ
    assert after_it.value("lmp_exporter_program_attached", hook="syscalls:sys_enter_pwrite64") == 1


def test_cgroup_option_splits_by_cgroup(exporter, workload, cgroup):
    proc, go = workload
    group_dir, group_path = cgroup
    by_cgroup = exporter("fileio", "-o", "cgroup=true", "-o", "latency=false")
    (group_dir / "cgroup.procs").write_text(str(proc.pid))
    before = by_cgroup.scrape()
    go()
    after = by_cgroup.scrape()

    # Only the workload runs in its cgroup, so its series holds exactly the workload's bytes.
    assert delta(before, after, "lmp_file_io_bytes_total", op="write", cgroup=group_path) == WRITTEN
    assert delta(before, after, "lmp_file_io_bytes_total", op="read", cgroup=group_path) == READ
    assert delta(before, after, "lmp_file_io_calls_total", op="write", cgroup=group_path) == WRITES + PWRITES
    assert "lmp_file_io_latency_seconds" not in after.families  # latency=false
    assert "sys_enter_write" not in str(after.families["lmp_exporter_program_attached"].samples)
