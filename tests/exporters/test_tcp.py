"""tcp: connections, refusals, resets and retransmissions must match a workload whose TCP traffic we know.

Every exporter here is filtered to one port the test holds (option filter_port), so other TCP traffic
on the host cannot change the numbers: the port lies below the ephemeral range, so no connect()
anywhere picks it as a source port, and the test's own sockets hold it on each address it uses."""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import wait_for
from tests.conftest import Scrape, delta

CONNECTS = 37
REFUSED_V4 = 6  # to 127.0.0.2, where nothing listens on the port
REFUSED_V6 = 5  # to ::1, likewise
REFUSED = REFUSED_V4 + REFUSED_V6
ROUND_TRIPS = 50
LISTEN, TIME_WAIT = 0x0A, 0x06  # states as /proc/net/tcp prints them


def total(scrape: Scrape, family: str) -> float:
    """A counter's value summed over its labels (a counter's family is named without _total)."""
    found = scrape.families.get(family)
    return sum(s.value for s in found.samples if s.name.endswith("_total")) if found else 0.0


def busy_sockets(port: int, netns: str | None = None) -> int:
    """Sockets on `port` still on their way to CLOSE: neither listening nor in TIME_WAIT (whose full
    socket has already closed)."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    text = subprocess.run([*prefix, "cat", "/proc/net/tcp", "/proc/net/tcp6"], check=True,
                          capture_output=True, text=True).stdout
    busy = 0
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 3 and ":" in fields[1] and fields[0] != "sl":
            ports = {int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16)}
            busy += port in ports and int(fields[3], 16) not in (LISTEN, TIME_WAIT)
    return busy


def held_port() -> tuple[int, list[socket.socket]]:
    """A port below the ephemeral range with a listener on 127.0.0.1, and bound (not listening)
    sockets on 127.0.0.2 and ::1 so that connects there are refused and nobody else can listen."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(100):
        port = random.randrange(10000, low)
        held = []
        try:
            for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "127.0.0.2"),
                                    (socket.AF_INET6, "::1")):
                held.append(socket.socket(family, socket.SOCK_STREAM))
                held[-1].bind((address, port))
            held[0].listen(64)
            return port, held
        except OSError:
            for s in held:
                s.close()
    raise AssertionError("no free port below the ephemeral range")


@pytest.fixture
def port() -> Iterator[tuple[int, socket.socket]]:
    port, held = held_port()
    yield port, held[0]
    for s in held:
        s.close()


def test_connects_and_refusals_are_counted_exactly(exporter, port):
    port, listener = port
    tcp = exporter("tcp", "-o", f"filter_port={port}")
    everyone = exporter("tcp")
    before, before_all = tcp.scrape(), everyone.scrape()
    for _ in range(CONNECTS):
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
        client.close()  # the client closes first: FIN_WAIT1, FIN_WAIT2, then CLOSE at TIME_WAIT
        server.close()  # CLOSE_WAIT, LAST_ACK, CLOSE
    for address, n in (("127.0.0.2", REFUSED_V4), ("::1", REFUSED_V6)):
        for _ in range(n):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((address, port))
    wait_for(lambda: busy_sockets(port) == 0, "the test's connections to close")
    after, after_all = tcp.scrape(), everyone.scrape()

    for direction in ("active", "passive"):
        assert delta(before, after, "lmp_tcp_connections_opened_total", direction=direction) == CONNECTS
    assert delta(before, after, "lmp_tcp_connections_failed_total", direction="active") == REFUSED
    assert total(after, "lmp_tcp_connections_failed") - total(before, "lmp_tcp_connections_failed") == REFUSED
    assert delta(before, after, "lmp_tcp_connections_closed_total") == 2 * CONNECTS  # both ends
    # A refused connect is answered by the kernel itself (no socket on that address) and reset.
    assert delta(before, after, "lmp_tcp_resets_sent_total", reason="NO_SOCKET") == REFUSED
    assert total(after, "lmp_tcp_resets_sent") - total(before, "lmp_tcp_resets_sent") == REFUSED
    assert delta(before, after, "lmp_tcp_resets_received_total") == REFUSED
    assert total(after, "lmp_tcp_retransmits") == total(before, "lmp_tcp_retransmits")

    moves = {("TCP_CLOSE", "TCP_SYN_SENT"): CONNECTS + REFUSED, ("TCP_SYN_SENT", "TCP_ESTABLISHED"): CONNECTS,
             ("TCP_SYN_SENT", "TCP_CLOSE"): REFUSED, ("TCP_LISTEN", "TCP_SYN_RECV"): CONNECTS,
             ("TCP_SYN_RECV", "TCP_ESTABLISHED"): CONNECTS, ("TCP_ESTABLISHED", "TCP_FIN_WAIT1"): CONNECTS,
             ("TCP_FIN_WAIT1", "TCP_FIN_WAIT2"): CONNECTS, ("TCP_FIN_WAIT2", "TCP_CLOSE"): CONNECTS,
             ("TCP_ESTABLISHED", "TCP_CLOSE_WAIT"): CONNECTS, ("TCP_CLOSE_WAIT", "TCP_LAST_ACK"): CONNECTS,
             ("TCP_LAST_ACK", "TCP_CLOSE"): CONNECTS}
    for (old, new), n in moves.items():
        assert delta(before, after, "lmp_tcp_state_transitions_total", **{"from": old, "to": new}) == n, (old, new)
    assert total(after, "lmp_tcp_state_transitions") - total(before, "lmp_tcp_state_transitions") == sum(
        moves.values())

    # Every established connection has a lifetime, both ends; connect() timed its handshakes.
    lifetimes = delta(before, after, "lmp_tcp_connection_lifetime_seconds_count")
    lived = delta(before, after, "lmp_tcp_connection_lifetime_seconds_sum")
    assert lifetimes == 2 * CONNECTS
    assert 0 < lived / lifetimes < 1.0
    handshakes = delta(before, after, "lmp_tcp_handshake_seconds_count")
    assert handshakes == CONNECTS
    assert 0 < delta(before, after, "lmp_tcp_handshake_seconds_sum") / handshakes < 1.0
    assert "lmp_tcp_srtt_seconds" not in after.families  # off by default

    # Unfiltered, the same events are counted among the host's others.
    assert delta(before_all, after_all, "lmp_tcp_connections_opened_total", direction="passive") >= CONNECTS
    assert delta(before_all, after_all, "lmp_tcp_resets_sent_total", reason="NO_SOCKET") >= REFUSED


def srtt_us(s: socket.socket) -> int:
    """The kernel's smoothed RTT of a socket in microseconds: struct tcp_info's tcpi_rtt."""
    return int.from_bytes(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[68:72], sys.byteorder)


def srtt_bucket(us: int) -> int:
    """The exported bucket (its `le` is 2^k microseconds) an srtt falls in: lmp_hist_observe's slot,
    with the slots below the spec's min_slot 3 folded into the first bucket."""
    return max(3, (us - 1).bit_length() if us > 1 else 0)


def test_srtt_option_observes_every_segment_received(exporter, port):
    """Ping-pong on one connection. Right after a socket received a message its srtt is read; nothing
    else arrives before the next segment (loopback delivers in the sender's call), whose tcp_probe
    therefore sees exactly that srtt. So every value read must be in the histogram."""
    port, listener = port
    tcp = exporter("tcp", "-o", f"filter_port={port}", "-o", "srtt=true")
    before = tcp.scrape()
    client = socket.create_connection(("127.0.0.1", port))
    server, _ = listener.accept()
    read: list[int] = []
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(ROUND_TRIPS):
        client.sendall(b"ping")
        assert server.recv(4) == b"ping"
        server_srtt = srtt_us(server)
        server.sendall(b"pong")
        assert client.recv(4) == b"pong"
        if i < ROUND_TRIPS - 1:  # the last values may meet only the closing segments, outside ESTABLISHED
            read += [server_srtt, srtt_us(client)]
    client.close()
    server.close()
    wait_for(lambda: busy_sockets(port) == 0, "the connection to close")
    after = tcp.scrape()

    name = "lmp_tcp_srtt_seconds"
    seen = delta(before, after, f"{name}_count")
    # Each end receives every message in ESTABLISHED, sometimes with a separate ACK before it.
    assert 2 * ROUND_TRIPS <= seen <= 4 * ROUND_TRIPS + 4
    cumulative = lambda k: after.bucket(name, (1 << k) * 1e-6) - before.bucket(name, (1 << k) * 1e-6, 0.0)
    for k in sorted({srtt_bucket(us) for us in read if us}):
        in_bucket = cumulative(k) - (cumulative(k - 1) if k > 3 else 0)
        expected = sum(1 for us in read if us and srtt_bucket(us) == k)
        assert in_bucket >= expected, f"bucket le={1 << k} us: {in_bucket} observed, {expected} read"
    assert 0 < delta(before, after, f"{name}_sum") / seen < 1.0


NS_ADDRESSES = ("10.213.0.1", "10.213.0.2")
MACS = ("02:00:0a:d5:00:01", "02:00:0a:d5:00:02")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    """A client and a server network namespace joined by a veth pair, removed afterwards. Segments are
    one MSS each (gso_max_segs 1), so retransmitted packets and the kernel's retransmitted segments
    count the same; fixed neighbours, so no ARP is needed after the link comes back."""
    names = (f"lmp-tcp-c-{os.getpid()}", f"lmp-tcp-s-{os.getpid()}")
    try:
        for name in names:
            ip("netns", "add", name)
            ip("-n", name, "link", "set", "lo", "up")
        ip("-n", names[0], "link", "add", "vc", "address", MACS[0], "gso_max_segs", "1", "type", "veth",
           "peer", "name", "vs", "address", MACS[1], "gso_max_segs", "1", "netns", names[1])
        for name, dev, mine, theirs, mac in ((names[0], "vc", *NS_ADDRESSES, MACS[1]),
                                             (names[1], "vs", *reversed(NS_ADDRESSES), MACS[0])):
            ip("-n", name, "addr", "add", f"{mine}/30", "dev", dev)
            ip("-n", name, "link", "set", dev, "up")
            ip("-n", name, "neigh", "replace", theirs, "lladdr", mac, "dev", dev, "nud", "permanent")
        yield names
    finally:
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def retransmitted(netns: str) -> int:
    """The namespace's own TcpRetransSegs, from its /proc/net/snmp."""
    text = subprocess.run(["ip", "netns", "exec", netns, "cat", "/proc/net/snmp"], check=True,
                          capture_output=True, text=True).stdout
    names, values = [line.split()[1:] for line in text.splitlines() if line.startswith("Tcp:")]
    return int(values[names.index("RetransSegs")])


SERVER = """
import socket, sys
l = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
s, _ = l.accept()
n = 0
while chunk := s.recv(65536):
    n += len(chunk)
s.sendall(str(n).encode())
s.close()
"""
CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
print("connected", flush=True)
sys.stdin.readline()
c.sendall(b"l" * int(sys.argv[3]))
c.shutdown(socket.SHUT_WR)
print(c.recv(64).decode(), flush=True)
c.close()
"""
BYTES = 100_000


def test_retransmissions_match_the_kernels_count(exporter, namespaces):
    """The server's end of the link goes down while the client sends: the client's packets are lost
    (dropped with no carrier) and it retransmits on timeout until the link is back."""
    client_ns, server_ns = namespaces
    port = random.randrange(10000, 30000)  # fresh namespaces: every port is free
    tcp = exporter("tcp", "-o", f"filter_port={port}")
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-c", SERVER, NS_ADDRESSES[1],
                               str(port)], stdout=subprocess.PIPE, text=True)
    client = None
    try:
        assert server.stdout.readline().strip() == "ready"  # listening: the client may connect
        client = subprocess.Popen(["ip", "netns", "exec", client_ns, sys.executable, "-c", CLIENT, NS_ADDRESSES[1],
                                   str(port), str(BYTES)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert client.stdout.readline().strip() == "connected"
        before = tcp.scrape()
        kernel_before = retransmitted(client_ns) + retransmitted(server_ns)
        ip("-n", server_ns, "link", "set", "vs", "down")
        client.stdin.write("go\n")
        client.stdin.flush()
        wait_for(lambda: retransmitted(client_ns) >= 2, "the client to retransmit twice")
        ip("-n", server_ns, "link", "set", "vs", "up")
        assert client.stdout.readline().strip() == str(BYTES)  # everything arrived in the end
        assert client.wait(timeout=30) == 0 and server.wait(timeout=30) == 0
    finally:
        for proc in (client, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    for netns in namespaces:
        wait_for(lambda: busy_sockets(port, netns) == 0, f"the connection in {netns} to close")
    after = tcp.scrape()
    kernel = retransmitted(client_ns) + retransmitted(server_ns) - kernel_before

    counted = total(after, "lmp_tcp_retransmits") - total(before, "lmp_tcp_retransmits")
    assert counted == kernel >= 2
    assert delta(before, after, "lmp_tcp_retransmits_total", state="TCP_ESTABLISHED") >= 2
