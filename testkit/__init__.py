"""Helpers that tests, `lmp bench` and the collectors' workloads share, written once: a free port, waiting
for a condition, a pair of network namespaces joined by veth, a cgroup of one's own. They make only what
they remove, on this host: namespaces and cgroups nested under this process's own."""
from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from exporters._lib.decoders import cgroup2_root, own_cgroup2
from exporters._lib.function.netns import entered

T = TypeVar("T")


def free_port() -> int:
    """A TCP port nothing listens on now, on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(names: Iterable[str]) -> dict[str, int]:
    """A distinct free port for each name: the sockets stay bound until all are chosen, since ports chosen
    one at a time may repeat (the kernel hands a freed ephemeral port out again)."""
    held = []
    try:
        for _ in names:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return {name: s.getsockname()[1] for name, s in zip(names, held)}
    finally:
        for s in held:
            s.close()


def wait_for(condition: Callable[[], T], what: str = "", timeout: float = 90.0, every: float = 0.2) -> T:
    """condition()'s first true value, tried every `every` s for up to `timeout` s (an OSError counts as
    not yet: a server still starting); AssertionError naming `what` when time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if result := condition():
                return result
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(every)


@dataclass
class VethPair:
    """Two network namespaces made for one test, joined by a veth pair (veth0 in each): `guarded`, with
    GUARDED_V4/V6, and `peer`, with PEER_V4/V6 (two addresses each: a test can send from either). Each side
    knows the other's MAC (static neighbours), so no ARP or neighbour discovery runs, and traffic stays
    between the two."""
    guarded: str
    peer: str
    GUARDED_V4 = "10.213.0.1"
    GUARDED_V6 = "fd00:213::1"
    PEER_V4 = ("10.213.0.2", "10.213.0.3")
    PEER_V6 = ("fd00:213::2", "fd00:213::3")

    @property
    def interface(self) -> str:
        """The guarded end as function components name it: NETNS/NAME."""
        return f"{self.guarded}/veth0"

    def socket_in(self, netns_name: str, family: int = socket.AF_INET, kind: int = socket.SOCK_DGRAM) -> socket.socket:
        """A socket in one of the two namespaces (it stays there; this thread does not)."""
        with entered(netns_name):
            return socket.socket(family, kind)

    def sender(self, source: str) -> socket.socket:
        """A UDP socket in the peer namespace sending from `source`."""
        s = self.socket_in(self.peer, socket.AF_INET6 if ":" in source else socket.AF_INET)
        s.bind((source, 0))
        return s

    def receiver(self, family: int = socket.AF_INET) -> socket.socket:
        """A UDP socket in the guarded namespace, bound to its address with a large receive buffer."""
        s = self.socket_in(self.guarded, family)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((self.GUARDED_V6 if family == socket.AF_INET6 else self.GUARDED_V4, 0))
        return s

    def xdp_programs(self) -> list[dict]:
        """The XDP programs attached to the guarded end, as `ip -d link` reports them."""
        out = subprocess.run(["ip", "-n", self.guarded, "-j", "-d", "link", "show", "dev", "veth0"],
                             capture_output=True, text=True, check=True).stdout
        return [entry["prog"] for entry in json.loads(out)[0].get("xdp", {}).get("attached", [])]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _mac(ns: str) -> str:
    out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", "dev", "veth0"], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)[0]["address"]


@contextmanager
def made_veth_pair(prefix: str = "lmp") -> Iterator[VethPair]:
    """A VethPair; both namespaces (and with them the veth pair, and any XDP program on it) are deleted
    afterwards."""
    stem = f"{prefix}-{os.getpid()}-{next(_netns_serial)}"
    pair = VethPair(f"{stem}-g", f"{stem}-p")
    try:
        _ip("netns", "add", pair.guarded)
        _ip("netns", "add", pair.peer)
        _ip("-n", pair.guarded, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", pair.peer)
        for ns, v4, v6 in ((pair.guarded, (pair.GUARDED_V4,), (pair.GUARDED_V6,)), (pair.peer, pair.PEER_V4, pair.PEER_V6)):
            for address in v4:
                _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "veth0")
            for address in v6:
                _ip("-n", ns, "addr", "add", f"{address}/64", "dev", "veth0", "nodad")
            _ip("-n", ns, "link", "set", "veth0", "up")
        for ns, other, addresses in ((pair.guarded, pair.peer, (*pair.PEER_V4, *pair.PEER_V6)),
                                     (pair.peer, pair.guarded, (pair.GUARDED_V4, pair.GUARDED_V6))):
            for address in addresses:
                _ip("-n", ns, "neigh", "replace", address, "lladdr", _mac(other), "dev", "veth0", "nud", "permanent")
        yield pair
    finally:
        for ns in (pair.guarded, pair.peer):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    assert not [ns for ns in (pair.guarded, pair.peer) if (Path("/run/netns") / ns).exists()], "netns left"


_netns_serial = itertools.count()


@contextmanager
def made_cgroup(prefix: str = "lmp-test") -> Iterator[tuple[Path, str]]:
    """A cgroup v2 directory nested under this process's own cgroup (never beside it): (directory, path as
    the cgroup decoder names it). Afterwards, processes left in it are killed and it is removed."""
    root = cgroup2_root()
    group = own_cgroup2() / f"{prefix}-{os.getpid()}-{next(_cgroup_serial)}"
    group.mkdir()
    try:
        yield group, "/" + str(group.relative_to(root))
    finally:
        for pid in (group / "cgroup.procs").read_text().split():  # leftovers of a failed test
            os.kill(int(pid), signal.SIGKILL)
        for _ in range(100):  # a killed process leaves its cgroup a moment after the signal
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.05)


_cgroup_serial = itertools.count()
