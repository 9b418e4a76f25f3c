"""`lmp bench` (or `python -m bench`): measures, in one run and side by side,
- the added cost per syscall of each collector, of an empty program (the floor) and of bcc's syscount;
- each exporter's start-up (compile + attach until the first /metrics answer) and memory after start;
- /metrics latency at 1k and 10k series; the time of a second, nothing-to-do install.
Prints Markdown tables (the ones in docs/performance.md). Needs root, like the exporters."""
from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COLLECTORS = ("syscalls", "runqlat", "biolatency")
LMP = [sys.executable, "-m", "lmp"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


class Exporter:
    """An exporter process; `seconds` is from spawn to its first /metrics answer."""

    def __init__(self, name: str, *options: str) -> None:
        self.url = f"http://127.0.0.1:{free_port()}/metrics"
        started = time.monotonic()
        self.proc = subprocess.Popen([*LMP, "exporter", name, "--listen", self.url[7:-8], *options],
                                     stderr=subprocess.DEVNULL)
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: exporter {name} exited with {self.proc.returncode}")
            try:
                get(self.url)
                break
            except OSError:
                time.sleep(0.02)
        self.seconds = time.monotonic() - started

    def memory_mb(self) -> dict[str, float]:
        """Private (RSS not shared with other processes), proportional (PSS) and resident memory, MB."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, value = line.split(":")
            fields[key] = int(value.split()[0]) / 1024
        return {"private": fields["Private_Clean"] + fields["Private_Dirty"], "pss": fields["Pss"],
                "rss": fields["Rss"]}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def loop_ns(binary: Path, calls: int, runs: int) -> float:
    """Median over `runs` of the loop's mean ns per getpid call."""
    return statistics.median(float(subprocess.run([str(binary), str(calls)], capture_output=True, text=True,
                                                  check=True).stdout) for _ in range(runs))


def with_syscount(binary: Path, calls: int, runs: int) -> float | None:
    """The peer: bcc's syscount-bpfcc (raw_syscalls tracepoints too), attached while the loop runs."""
    tool = shutil.which("syscount-bpfcc")
    if tool is None:
        return None
    proc = subprocess.Popen([tool], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    while "Tracing" not in (proc.stdout.readline() or "Tracing"):  # printed once attached
        pass
    try:
        return loop_ns(binary, calls, runs)
    finally:
        proc.send_signal(2)
        proc.communicate(timeout=30)


def overhead(calls: int, runs: int) -> tuple[list[list[str]], dict[str, Exporter]]:
    from bcc import BPF
    workdir = Path(tempfile.mkdtemp(prefix="lmp-bench-"))
    binary = workdir / "getpid_loop"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(HERE / "getpid_loop.c")], check=True)
    try:
        base = loop_ns(binary, calls, runs)
        empty = BPF(src_file=str(HERE / "empty.bpf.c").encode())
        floor = loop_ns(binary, calls, runs)
        empty.cleanup()
        results = [("no probe", base), ("empty program on raw_syscalls:sys_exit (the floor)", floor)]
        exporters: dict[str, Exporter] = {}
        for label, name, options in [("syscalls", "syscalls", ()), ("syscalls -o latency=true", "syscalls", ("-o", "latency=true")),
                                     ("runqlat", "runqlat", ()), ("biolatency", "biolatency", ())]:
            exporter = Exporter(name, *options)
            results.append((f"lmp exporter {label}", loop_ns(binary, calls, runs)))
            exporter.stop()
            exporters.setdefault(name, exporter)
        peer = with_syscount(binary, calls, runs)
        if peer is not None:
            results.append(("syscount-bpfcc (bcc's tool, the peer)", peer))
    finally:
        shutil.rmtree(workdir)
    rows = []
    for label, ns in results:
        added = ns - base
        ratio = f"{added / (floor - base):.2f}x" if floor > base and label != "no probe" else ""
        rows.append([label, f"{ns:.0f}", f"{added:+.0f}", ratio])
    return rows, exporters


def startup_and_memory(runs: int) -> list[list[str]]:
    rows = []
    for name in COLLECTORS:
        seconds, memory = [], []
        for _ in range(runs):
            exporter = Exporter(name)
            time.sleep(1.0)  # let the first scrape and the trim settle
            seconds.append(exporter.seconds)
            memory.append(exporter.memory_mb())
            exporter.stop()
        mem = {k: statistics.median(m[k] for m in memory) for k in memory[0]}
        rows.append([name, f"{statistics.median(seconds):.2f}", f"{mem['private']:.1f}", f"{mem['pss']:.1f}",
                     f"{mem['rss']:.1f}"])
    return rows


def scrape_latency(sizes: tuple[int, ...], runs: int) -> list[list[str]]:
    """/metrics through the real path (BPF map -> collector -> client_python -> HTTP) on a filled map."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    from exporters._lib import bpf, catalog
    from exporters._lib.collector import BpfCollector, SelfCollector
    from exporters._lib.exporter import MetricsApp, bind

    spec = catalog.load("series", [HERE])
    loaded = bpf.load(spec, {})
    app = MetricsApp(CollectorRegistry())
    app.collector = BpfCollector(spec, loaded, {})
    app.registry.register(SelfCollector(app.collector))
    ProcessCollector(registry=app.registry)
    port = free_port()
    server = bind("127.0.0.1", port, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    table = loaded.bpf.get_table("bench_series_total")
    rows = []
    try:
        for size in sizes:
            table.clear()
            for i in range(size):  # distinct (syscall, errno) label pairs
                key = table.Key(i % 512, i // 512 + 1)
                table[key] = table.Leaf(*([1] * table.total_cpu))
            get(f"http://127.0.0.1:{port}/metrics")  # warm the decoders' caches, as a running exporter has
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                body = get(f"http://127.0.0.1:{port}/metrics")
                times.append(time.perf_counter() - started)
            assert body.count(b"\nlmp_bench_series_total{") == size
            rows.append([f"{size:,}", f"{statistics.median(times) * 1e3:.1f}", f"{max(times) * 1e3:.1f}",
                         f"{len(body) / 1024:.0f}"])
    finally:
        server.shutdown()
        loaded.close()
    return rows


def install_seconds() -> str:
    started = time.monotonic()
    subprocess.run(["bash", str(ROOT / "scripts" / "install.sh")], check=True, capture_output=True)
    return f"{time.monotonic() - started:.2f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lmp bench", description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=2_000_000, help="getpid calls per loop run")
    p.add_argument("--runs", type=int, default=5, help="repetitions; medians are shown")
    args = p.parse_args(argv)
    print(f"kernel {subprocess.run(['uname', '-r'], capture_output=True, text=True).stdout.strip()}, "
          f"{len(__import__('os').sched_getaffinity(0))} CPUs; medians of {args.runs} runs\n", flush=True)
    rows, _ = overhead(args.calls, args.runs)
    print("Per-syscall cost (getpid loop of %d calls)\n" % args.calls)
    print(table(["probe", "ns per call", "added ns", "added vs floor"], rows), "\n", flush=True)
    print(table(["exporter", "start-up s (compile + attach + first answer)", "private MB", "PSS MB", "RSS MB"],
                startup_and_memory(max(1, args.runs // 2 + 1))), "\n", flush=True)
    print(table(["series", "/metrics median ms", "max ms", "body KiB"], scrape_latency((1000, 10000), 20)), "\n")
    print(table(["step", "seconds"], [["scripts/install.sh, second run (what `make run` adds before starting)",
                                       install_seconds()]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
