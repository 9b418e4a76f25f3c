"""`lmp bench`'s /metrics latency: through the real path (BPF map -> collector -> exposition -> HTTP) on
a map filled with 1k and 10k series, and for ebpf_exporter's four jobs beside LMP's exporters doing them."""
from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

from exporters._lib import catalog
from testkit import free_port

from .footprint import PEER_JOBS
from .harness import Exporter, ebpf_exporter, get, have_peer

HERE = Path(__file__).resolve().parent


def timed_scrapes(url: str, runs: int) -> tuple[list[float], int]:
    """Seconds each of `runs` scrapes took (after one to warm the caches), and the body's bytes."""
    get(url)
    times, body = [], b""
    for _ in range(runs):
        started = time.perf_counter()
        body = get(url)
        times.append(time.perf_counter() - started)
    return times, len(body)


def ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1e3:.1f} ({min(times) * 1e3:.1f}-{max(times) * 1e3:.1f})"


def series_latency(sizes: tuple[int, ...], runs: int) -> list[list[str]]:
    from prometheus_client import CollectorRegistry, ProcessCollector

    from exporters._lib import bpf
    from exporters._lib.collector import BpfCollector, SelfCollector
    from exporters._lib.exporter import MetricsApp, bind

    spec = catalog.load("series", [HERE], check=False)
    loaded = bpf.load(spec, {})
    app = MetricsApp(CollectorRegistry())
    app.collector = BpfCollector(spec, loaded, {})
    app.registry.register(SelfCollector(app.collector))
    ProcessCollector(registry=app.registry)
    port = free_port()
    server = bind("127.0.0.1", port, app)
    threading.Thread(target=server.serve, daemon=True).start()
    table = loaded.maps["bench_series_total"]
    rows = []
    try:
        for size in sizes:
            table.clear()
            one = (1).to_bytes(8, "little")
            for i in range(size):  # distinct (syscall, errno) label pairs
                table.update(table.key.pack(syscall=i % 512, errno=i // 512 + 1), one)
            times, length = timed_scrapes(f"http://127.0.0.1:{port}/metrics", runs)
            rows.append([f"{size:,}", ms(times), f"{length / 1024:.0f}"])
    finally:
        server.stop()
        app.collector.close()
    return rows


def peer_latency(runs: int) -> list[list[str]]:
    """The four jobs: each of LMP's exporters alone, their sum, and ebpf_exporter serving all four."""
    rows, total = [], [0.0] * runs
    for name in PEER_JOBS:
        exporter = Exporter(name)
        try:
            times, length = timed_scrapes(f"http://{exporter.listen}/metrics", runs)
        finally:
            exporter.stop()
        rows.append([f"lmp {name}", ms(times), f"{length / 1024:.0f}"])
        total = [t + x for t, x in zip(total, times)]
    rows.append(["lmp, the four", ms(total), "-"])
    if have_peer("ebpf_exporter/ebpf_exporter"):
        peer = ebpf_exporter(*PEER_JOBS.values())
        try:
            times, length = timed_scrapes(peer.url or "", runs)
        finally:
            peer.stop()
        rows.append(["ebpf_exporter, the four", ms(times), f"{length / 1024:.0f}"])
    return rows
