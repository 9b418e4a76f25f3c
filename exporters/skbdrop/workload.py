"""What makes skbdrop's panels show data: UDP datagrams to a closed loopback port, dropped for want of a
socket."""
from pathlib import Path

from testkit.workloads import udp_to_closed_port


def run(scratch: Path) -> None:
    udp_to_closed_port()
