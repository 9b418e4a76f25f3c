"""What makes tcp's panels show data: loopback connections with data, refused connects (resets) and
connects whose SYNs a full accept queue drops (retransmissions)."""
from pathlib import Path

from testkit.workloads import tcp_traffic


def run(scratch: Path) -> None:
    tcp_traffic()
