"""What makes biolatency's panels show data: buffered writes synced to this disk (block requests, bytes),
and reads past the end of a small loop device (failed requests, errors)."""
import os
from pathlib import Path

from testkit.workloads import failing_disk, read_past_the_end


def run(scratch: Path) -> None:
    with open(scratch / "written", "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 16))
        f.flush()
        os.fsync(f.fileno())
    with failing_disk(scratch) as device:
        read_past_the_end(device, 3)
