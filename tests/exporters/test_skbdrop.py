"""skbdrop: datagrams the kernel cannot deliver must be counted under the reason the kernel gives, and
datagrams it delivers must not be counted at all."""
from __future__ import annotations

import socket

import pytest

from tests.conftest import Scrape, delta

DATAGRAMS = 300
SLACK = 30  # other drops of the same reason elsewhere on the host while the test runs


def all_drops(scrape: Scrape) -> float:
    family = scrape.families.get("lmp_skb_drops")  # a counter's family is named without _total
    return sum(s.value for s in family.samples) if family else 0.0


def closed_port(family: int, address: str) -> int:
    """A UDP port nobody listens on: one the kernel just gave us, released again."""
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("family,address,protocol", [(socket.AF_INET, "127.0.0.1", "ipv4"),
                                                     (socket.AF_INET6, "::1", "ipv6")], ids=["ipv4", "ipv6"])
def test_datagrams_to_a_closed_port_are_no_socket_drops(exporter, family, address, protocol):
    drops = exporter("skbdrop")
    port = closed_port(family, address)
    before = drops.scrape()
    with socket.socket(family, socket.SOCK_DGRAM) as s:  # unconnected: ICMP errors do not fail sendto
        for _ in range(DATAGRAMS):
            s.sendto(b"lmp", (address, port))
    after = drops.scrape()
    grew = delta(before, after, "lmp_skb_drops_total", reason="NO_SOCKET", protocol=protocol)
    assert DATAGRAMS <= grew <= DATAGRAMS + SLACK


def test_full_receive_buffer_drops_and_delivered_datagrams(exporter):
    """Datagrams sent to a socket whose small receive buffer is full are dropped (SOCKET_RCVBUFF); the
    ones it receives were freed normally (consume_skb) and are not counted anywhere."""
    drops = exporter("skbdrop")
    before = drops.scrape()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        rx.bind(("127.0.0.1", 0))
        for _ in range(DATAGRAMS):
            tx.sendto(b"lmp", rx.getsockname())
        received = 0
        rx.settimeout(0.5)  # loopback delivers in the sender's softirq; a pause means the queue is empty
        try:
            while True:
                rx.recv(16)
                received += 1
        except TimeoutError:
            pass
    after = drops.scrape()
    lost = DATAGRAMS - received
    assert 0 < received and lost > 0, f"received {received} of {DATAGRAMS}"
    full = delta(before, after, "lmp_skb_drops_total", reason="SOCKET_RCVBUFF", protocol="ipv4")
    assert lost <= full <= lost + SLACK
    # The datagrams delivered were freed by consume_skb: no reason, however named, counted them.
    assert all_drops(after) - all_drops(before) <= lost + SLACK
