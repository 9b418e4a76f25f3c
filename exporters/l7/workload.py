"""What makes l7's panels show data: HTTP, DNS, Redis and PostgreSQL requests to servers started on
loopback for the purpose, some of them failing."""
from pathlib import Path

from testkit.workloads import l7_traffic


def run(scratch: Path) -> None:
    l7_traffic(scratch)
