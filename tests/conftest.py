"""Shared test fixtures: start real exporters, scrape them, and check the machine is left as found."""
from __future__ import annotations

import json
import mmap
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from exporters._lib import paths
from exporters._lib.bpf import programs_held_by
from exporters._lib.serving import Reach, wait_until_serving
from exporters._lib.spec import load_self
from testkit import VethPair, free_port, free_ports, made_cgroup, made_veth_pair, wait_for  # noqa: F401 (shared with the tests)
from testkit.traffic import PAYLOAD, connect_from, datagrams_received, send_datagrams  # noqa: F401 (likewise)

ROOT = paths.ROOT
LMP = [sys.executable, "-m", "lmp"]
START_TIMEOUT = 60.0


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
                and m.name not in self_spec.cgroup_only and (uprobes or m.name not in self_spec.uprobes_only)]
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


def make_cert(directory: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made by openssl as docs/fleet.md makes one."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=lmp", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


class Exporter:
    def __init__(self, name: str, args: list[str], port: int, config: Path | None = None, host: str = "127.0.0.1",
                 reach: Reach = Reach()) -> None:
        self.name, self.port, self.reach = name, port, reach  # reach: HTTPS and basic auth, for a web config
        self.url = reach.url(f"127.0.0.1:{port}")
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe nobody reads, so it never blocks
        self.killed = False
        top = ["--config", str(config)] if config else []
        self.proc = subprocess.Popen([*LMP, *top, "exporter", name, "--listen", f"{host}:{port}", *args],
                                     stderr=self.stderr, text=True)
        if not wait_until_serving(self.url, time.monotonic() + START_TIMEOUT, lambda: self.proc.poll() is None, reach):
            log = self.log()
            self.stop()
            raise AssertionError(f"exporter {name} did not start: {log}")
        self.programs = programs_of(self.proc.pid)

    def text(self, headers: dict[str, str] | None = None) -> str:
        if headers:
            with urllib.request.urlopen(urllib.request.Request(self.url, headers=headers), timeout=10) as r:
                return r.read().decode()
        with self.reach.open(self.url, 10) as r:
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

    def start(name: str, *args: str, config: Path | None = None, host: str = "127.0.0.1",
              reach: Reach = Reach()) -> Exporter:
        started.append(Exporter(name, list(args), free_port(), config, host, reach))
        assert started[-1].programs, f"exporter {name} holds no BPF program"
        return started[-1]

    yield start
    codes = [e.stop() for e in started]
    assert codes == [0] * len(started), f"exporters exited with {codes}"
    left = programs_left(set().union(*(e.programs for e in started))) if started else set()
    assert not left, f"BPF programs {left} still loaded after their exporters stopped"


@pytest.fixture
def cgroup() -> Iterator[tuple[Path, str]]:
    """A made_cgroup() for one test."""
    with made_cgroup() as made:
        yield made


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


@pytest.fixture
def veth_pair() -> Iterator[VethPair]:
    """A made_veth_pair() for one test."""
    with made_veth_pair() as pair:
        yield pair
