"""Shared test fixtures: start real exporters, scrape them, and check the machine is left as found."""
from __future__ import annotations

import itertools
import json
import mmap
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from exporters._lib import paths
from exporters._lib.bpf import programs_held_by
from exporters._lib.decoders import cgroup2_root, own_cgroup2
from exporters._lib.function.netns import entered
from exporters._lib.serving import wait_until_serving
from exporters._lib.spec import load_self

ROOT = paths.ROOT
LMP = [sys.executable, "-m", "lmp"]
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bpf_program_ids() -> set[int]:
    out = subprocess.run(["bpftool", "-j", "prog", "show"], check=True, capture_output=True, text=True).stdout
    return {p["id"] for p in json.loads(out or "[]")}


programs_of = programs_held_by


def programs_left(ids: set[int], timeout: float = 5.0) -> set[int]:
    """Those of `ids` still loaded after giving the kernel `timeout` seconds to free them: it frees a
    program once its last link and descriptor are closed, after an RCU grace period, a few milliseconds
    after its process exits."""
    deadline = time.monotonic() + timeout
    while (left := ids & bpf_program_ids()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def check_histograms(families: dict) -> None:
    """Every histogram: buckets cumulative (non-decreasing), +Inf equal to _count, _sum not negative."""
    for family in families.values():
        if family.type != "histogram":
            continue
        series: dict[tuple, list] = {}
        for s in family.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            series.setdefault(key, []).append(s)
        for key, samples in series.items():
            buckets = [(float(s.labels["le"]), s.value) for s in samples if s.name.endswith("_bucket")]
            count = next(s.value for s in samples if s.name.endswith("_count"))
            total = next(s.value for s in samples if s.name.endswith("_sum"))
            values = [v for _, v in sorted(buckets)]
            assert values == sorted(values), f"{family.name}{key}: buckets not cumulative"
            assert buckets[-1] == (float("inf"), count), f"{family.name}{key}: +Inf != _count"
            assert total >= 0


@dataclass
class Scrape:
    families: dict

    def value(self, name: str, default: float | None = None, **labels: str) -> float:
        """A sample's value. A missing series fails the test unless a default is given (a counter
        whose labels were not seen yet is absent, which is 0)."""
        for family in self.families.values():
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return s.value
        if default is None:
            raise AssertionError(f"no sample {name}{labels} in the scrape")
        return default

    def bucket(self, name: str, le: float, default: float | None = None, **labels: str) -> float:
        les = [float(s.labels["le"]) for s in self.families[name].samples if s.name == f"{name}_bucket"] \
            if name in self.families else []
        assert not les or le in les, f"{name} has no bucket le={le}"
        return self.value(f"{name}_bucket", default, le=floatToGoString(le), **labels)


def check_self_metrics(scrape: Scrape, function: bool, uprobes: bool = False) -> None:
    """Every self metric is what exporters/_lib/self.yaml (read by the dashboards and docs) says it is; a
    collector has none of those only function components (or collectors with uprobes) export."""
    scraped, self_spec = scrape.families, load_self()
    expected = [m for m in self_spec.metrics if (function or m.name not in self_spec.function_only)
                and (uprobes or m.name not in self_spec.uprobes_only)]
    for metric in expected:
        family = scraped[metric.name.removesuffix("_total")]
        assert (family.type, family.documentation) == (metric.type, metric.help), metric.name
        assert {k for s in family.samples for k in s.labels} == {label.name for label in metric.labels}, metric.name
    assert not {f for f in scraped if f.startswith("lmp_exporter_")} - {m.name.removesuffix("_total") for m in expected}


def delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    """How much a series grew between two scrapes; it must exist in the later one."""
    return after.value(name, **labels) - before.value(name, 0.0, **labels)


K = TypeVar("K")


def bracketed(kernel: Callable[[], dict[K, int]], scrape: Callable[[], Scrape]) -> tuple[dict[K, int], Scrape, dict[K, int]]:
    """A scrape between two reads of the kernel's own counters. The exporter reads its maps inside the
    scrape, so over two such scrapes it counts at least what the kernel counted between the inner reads
    and at most what it counted between the outer ones (give or take an event in flight on each CPU)."""
    first = kernel()
    scraped = scrape()
    return first, scraped, kernel()


def within(counted: float, inner: int, outer: int, what: str = "") -> None:
    """`counted` lies in the bracket of bracketed(): [inner - CPUs in flight, outer + CPUs in flight]."""
    slack = os.cpu_count() or 1
    assert inner - slack <= counted <= outer + slack, f"{what}: counted {counted}, the kernel {inner}..{outer}"


class Exporter:
    def __init__(self, name: str, args: list[str], port: int, config: Path | None = None) -> None:
        self.name, self.port = name, port
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe nobody reads, so it never blocks
        self.killed = False
        top = ["--config", str(config)] if config else []
        self.proc = subprocess.Popen([*LMP, *top, "exporter", name, "--listen", f"127.0.0.1:{port}", *args],
                                     stderr=self.stderr, text=True)
        if not wait_until_serving(self.url, time.monotonic() + START_TIMEOUT, lambda: self.proc.poll() is None):
            log = self.log()
            self.stop()
            raise AssertionError(f"exporter {name} did not start: {log}")
        self.programs = programs_of(self.proc.pid)

    def text(self, headers: dict[str, str] | None = None) -> str:
        with urllib.request.urlopen(urllib.request.Request(self.url, headers=headers or {}), timeout=10) as r:
            return r.read().decode()

    def scrape(self) -> Scrape:
        families = {f.name: f for f in text_string_to_metric_families(self.text())}
        check_histograms(families)  # the invariants hold on every scrape
        return Scrape(families)

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def kill(self) -> None:
        """SIGKILL: nothing of ours runs after it; the kernel alone must clean up."""
        self.killed = True
        self.proc.kill()
        self.proc.wait(timeout=20)

    def stop(self) -> int:
        if self.killed:
            self.stderr.close()
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.stderr.close()


@pytest.fixture
def exporter() -> Iterator:
    """Factory: exporter("syscalls", "-o", "latency=true") starts a real exporter on a free port (with
    config=PATH, reading that config file). At teardown each is stopped by its PID, must exit 0 (or have
    been killed by the test), and none of its BPF programs may remain."""
    started: list[Exporter] = []

    def start(name: str, *args: str, config: Path | None = None) -> Exporter:
        started.append(Exporter(name, list(args), free_port(), config))
        assert started[-1].programs, f"exporter {name} holds no BPF program"
        return started[-1]

    yield start
    codes = [e.stop() for e in started]
    assert codes == [0] * len(started), f"exporters exited with {codes}"
    left = programs_left(set().union(*(e.programs for e in started))) if started else set()
    assert not left, f"BPF programs {left} still loaded after their exporters stopped"


@contextmanager
def made_cgroup() -> Iterator[tuple[Path, str]]:
    """A cgroup v2 directory nested under this process's own cgroup (never beside it): (directory, path as
    the cgroup decoder names it). Afterwards, processes left in it are killed and it is removed."""
    root = cgroup2_root()
    group = own_cgroup2() / f"lmp-test-{os.getpid()}-{next(_cgroup_serial)}"
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


@pytest.fixture
def cgroup() -> Iterator[tuple[Path, str]]:
    """A made_cgroup() for one test."""
    with made_cgroup() as made:
        yield made


_cgroup_serial = itertools.count()


@pytest.fixture
def bcc_headers() -> None:
    """Tests that attach a program the way an older LMP or another tool did use BCC, which compiles with the
    running kernel's headers: link Debian's, as the scenario recorder does, whatever test ran first."""
    from scenario.loader import kernel_headers
    kernel_headers()


@pytest.fixture
def disk_dir() -> Iterator[Path]:
    """A folder on the disk that holds the repository (a real block device, where /tmp may be a tmpfs),
    removed with its contents afterwards."""
    folder = Path(tempfile.mkdtemp(dir=ROOT, prefix=".lmp-test-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def direct_writes(path: Path, count: int, block: int = 4096, fsync: bool = False) -> None:
    """`count` synchronous O_DIRECT writes of one block each to `path`: one block request apiece, each
    waited for until the disk signals its completion."""
    buf = mmap.mmap(-1, block)  # O_DIRECT needs an aligned buffer; mmap gives a page
    buf.write(b"l" * block)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
    try:
        for i in range(count):
            os.pwrite(fd, buf, i * block)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def run_lmp(*args: str, env: dict[str, str] | None = None, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*LMP, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, **kw)


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
def made_veth_pair() -> Iterator[VethPair]:
    """A VethPair; both namespaces (and with them the veth pair, and any XDP program on it) are deleted
    afterwards."""
    stem = f"lmp-{os.getpid()}-{next(_netns_serial)}"
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


@pytest.fixture
def veth_pair() -> Iterator[VethPair]:
    """A made_veth_pair() for one test."""
    with made_veth_pair() as pair:
        yield pair


_netns_serial = itertools.count()


# A child that waits to be moved into a cgroup, then connects to each HOST:PORT of its arguments and
# prints what happened to each: "ok" or the errno's name.
CONNECTOR = """
import errno, json, socket, sys
sys.stdin.readline()
out = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        s.connect((host.strip("[]"), int(port)))
        out[target] = "ok"
    except OSError as err:
        out[target] = errno.errorcode[err.errno]
    s.close()
print(json.dumps(out))
"""


def connect_from(group: Path | None, *targets: str) -> tuple[int, str, dict[str, str]]:
    """A new process, in `group` if given, connects to each target: (its pid, its comm, the outcomes)."""
    proc = subprocess.Popen([sys.executable, "-c", CONNECTOR, *targets], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    if group is not None:
        (group / "cgroup.procs").write_text(str(proc.pid))
    comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()
    out, _ = proc.communicate("go\n", timeout=30)
    assert proc.returncode == 0
    return proc.pid, comm, json.loads(out)


PAYLOAD = b"lmp netguard test"


def send_datagrams(sender: socket.socket, receiver: socket.socket, count: int) -> None:
    """`count` datagrams, with a pause every 50 so that the receiving backlog never overflows."""
    for i in range(count):
        sender.sendto(PAYLOAD, receiver.getsockname()[:2])
        if i % 50 == 49:
            time.sleep(0.001)


def datagrams_received(receiver: socket.socket) -> int:
    """Datagrams waiting at the receiver (it is drained); the veth delivers in the sender's softirq, so a
    pause means none are on their way."""
    receiver.settimeout(0.3)
    n = 0
    try:
        while True:
            receiver.recv(64)
            n += 1
    except TimeoutError:
        return n
