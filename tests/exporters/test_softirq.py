"""softirq: loopback UDP packets must each run NET_RX once, and every vector's count must match the
kernel's own count of softirq runs (/proc/softirqs) over the same window."""
from __future__ import annotations

import socket
from pathlib import Path

from tests.conftest import bracketed, delta, within

NAME = "lmp_softirq_duration_seconds"
PACKETS = 2000


def softirqs() -> dict[str, int]:
    """/proc/softirqs: runs of each vector since boot, summed over CPUs (the kernel counts each run)."""
    lines = Path("/proc/softirqs").read_text().splitlines()[1:]
    return {name.rstrip(":"): sum(map(int, counts)) for name, *counts in (line.split() for line in lines)}


def ping_loopback(packets: int) -> None:
    """Send datagrams over 127.0.0.1 one at a time, each received before the next is sent. On loopback a
    send queues the packet on this CPU's backlog and raises NET_RX, which runs before sendto() returns
    (when the send re-enables bottom halves). Only one packet is ever queued, so no NET_RX run can carry
    two: `packets` sends make at least `packets` NET_RX runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(10)
        for i in range(packets):
            tx.sendto(i.to_bytes(4, "little"), rx.getsockname())
            assert int.from_bytes(rx.recv(16), "little") == i


def test_loopback_packets_run_net_rx_and_counts_match_the_kernel(exporter):
    softirq = exporter("softirq")
    k1, before, k2 = bracketed(softirqs, softirq.scrape)
    ping_loopback(PACKETS)
    k3, after, k4 = bracketed(softirqs, softirq.scrape)

    net_rx = delta(before, after, f"{NAME}_count", vector="NET_RX")
    assert net_rx >= PACKETS
    spent = delta(before, after, f"{NAME}_sum", vector="NET_RX")
    assert 0 < spent / net_rx < 1e-3  # delivering one small datagram takes microseconds
    # Every vector's runs, against the kernel's count read on both sides of each scrape.
    for vector, runs in k4.items():
        # A vector first run after the second scrape (a rare one, BLOCK) has no series in either: 0, which
        # the kernel's count between the inner reads (k2 to k3) still holds to account.
        counted = (after.value(f"{NAME}_count", 0.0, vector=vector)
                   - before.value(f"{NAME}_count", 0.0, vector=vector))
        within(counted, k3[vector] - k2[vector], runs - k1[vector], vector)
    # The vectors a running host always uses are there, named from the kernel's own table.
    seen = {s.labels["vector"] for s in after.families[NAME].samples}
    assert {"TIMER", "NET_RX", "SCHED", "RCU"} <= seen
