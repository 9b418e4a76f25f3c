"""biolatency: O_DIRECT writes to a file on the real disk must appear as write requests of that disk."""
from __future__ import annotations

import os
from pathlib import Path

from testkit.workloads import failing_disk, read_past_the_end
from tests.conftest import delta, direct_writes

WRITES = 29
BLOCK = 4096


def disk_of(path: Path) -> str:
    """The whole disk holding `path` (a partition's parent), as block tracepoints name it."""
    st = os.stat(path)
    sysfs = Path(os.path.realpath(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"))
    return sysfs.parent.name if (sysfs / "partition").exists() else sysfs.name


def test_direct_writes_are_counted_for_their_disk(exporter, disk_dir):
    bio = exporter("biolatency")
    folder = disk_dir
    disk = disk_of(folder)
    before = bio.scrape()
    direct_writes(folder / "data", WRITES, BLOCK, fsync=True)
    after = bio.scrape()

    write = {"disk": disk, "op": "write"}
    requests = delta(before, after, "lmp_block_io_requests_total", **write)
    written = delta(before, after, "lmp_block_io_bytes_total", **write)
    done = delta(before, after, "lmp_block_io_latency_seconds_count", **write)
    spent = delta(before, after, "lmp_block_io_latency_seconds_sum", **write)
    assert requests >= WRITES
    assert written >= WRITES * BLOCK
    assert done >= WRITES
    assert 0 < spent / done < 1.0  # a 4 KiB write takes more than nothing and less than a second
    # The in-flight map is reported with the metric maps; our writes have all completed.
    assert 0 <= after.value("lmp_exporter_map_entries", map="inflight") < after.value(
        "lmp_exporter_map_capacity", map="inflight")


FAILED_READS = 7


def test_requests_that_fail_are_counted_as_errors(exporter, disk_dir):
    """Direct reads past the end of a loop device's shrunken backing file: each is one request that the
    loop driver completes with an I/O error."""
    bio = exporter("biolatency")
    with failing_disk(disk_dir) as device:
        read = {"disk": Path(device).name, "op": "read"}
        before = bio.scrape()
        read_past_the_end(device, FAILED_READS)
        after = bio.scrape()
    assert delta(before, after, "lmp_block_io_errors_total", **read) == FAILED_READS
    assert delta(before, after, "lmp_block_io_requests_total", **read) >= FAILED_READS
