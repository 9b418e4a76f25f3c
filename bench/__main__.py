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

from lmp.run import wait_until_serving

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
        listen = f"127.0.0.1:{free_port()}"
        started = time.monotonic()
        self.proc = subprocess.Popen([*LMP, "exporter", name, "--listen", listen, *options], stderr=subprocess.DEVNULL)
        if not wait_until_serving(self.proc, f"http://{listen}/metrics", started + 60):
            self.stop()
            raise SystemExit(f"bench: exporter {name} did not start (exit code {self.proc.returncode})")
        self.seconds = time.monotonic() - started

    def memory_mb(self) -> dict[str, float]:
        """MB of: private dirty memory (anonymous: what this process alone costs and the kernel cannot
        reclaim), PSS (its share of everything it maps) and RSS (all it maps, shared libraries too)."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, value = line.split(":")
            fields[key] = int(value.split()[0]) / 1024
        return {"private": fields["Private_Dirty"], "pss": fields["Pss"], "rss": fields["Rss"]}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def loop_ns(binary: Path, calls: int, runs: int, cpu: int | None = None) -> float:
    """Median over `runs` of the program's mean ns per operation (it prints that number)."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return statistics.median(float(subprocess.run([*pin, str(binary), str(calls)], capture_output=True, text=True,
                                                  check=True).stdout) for _ in range(runs))


def build(workdir: Path, name: str) -> Path:
    binary = workdir / name
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(HERE / f"{name}.c")], check=True)
    return binary


class Syscount:
    """The peer: bcc's syscount-bpfcc (raw_syscalls tracepoints too), attached until stopped."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["syscount-bpfcc"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        while "Tracing" not in (self.proc.stdout.readline() or "Tracing"):  # printed once attached
            pass

    def stop(self) -> None:
        self.proc.send_signal(2)
        self.proc.communicate(timeout=30)


class EmptyProgram:
    """The floor: a program that does nothing, on the tracepoint the syscalls collector uses."""

    def __init__(self) -> None:
        from bcc import BPF
        self.bpf = BPF(src_file=str(HERE / "empty.bpf.c").encode())

    def stop(self) -> None:
        self.bpf.cleanup()


def added_cost(binary: Path, n: int, runs: int, start) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(ns without, ns with) the probe `start()` attaches, measured back to back so that drift in this VM's
    speed between configurations does not count as overhead. The loop runs on CPU 0."""
    base = loop_ns(binary, n, runs, cpu=0)
    probe = start()
    try:
        return base, loop_ns(binary, n, runs, cpu=0)
    finally:
        probe.stop()


def overhead(calls: int, runs: int) -> list[list[str]]:
    workdir = Path(tempfile.mkdtemp(prefix="lmp-bench-"))
    try:
        binary = build(workdir, "getpid_loop")
        probes = [("empty program on raw_syscalls:sys_exit (the floor)", EmptyProgram),
                  ("lmp exporter syscalls", lambda: Exporter("syscalls")),
                  ("lmp exporter syscalls -o latency=true", lambda: Exporter("syscalls", "-o", "latency=true")),
                  ("lmp exporter runqlat", lambda: Exporter("runqlat")),
                  ("lmp exporter biolatency", lambda: Exporter("biolatency"))]
        if shutil.which("syscount-bpfcc"):
            probes.append(("syscount-bpfcc (bcc's tool, the peer)", Syscount))
        results = [(label, *added_cost(binary, calls, runs, start)) for label, start in probes]
    finally:
        shutil.rmtree(workdir)
    floor = results[0][2] - results[0][1]
    return [[label, f"{base:.0f}", f"{with_probe:.0f}", f"{with_probe - base:+.0f}",
             f"{(with_probe - base) / floor:.2f}x"] for label, base, with_probe in results]


def switch_cost(trips: int, runs: int) -> list[list[str]]:
    """runqlat's cost is per wake-up and context switch: a pipe round trip with and without it, both
    processes on one CPU (across CPUs, this VM's wake-up IPIs vary by tens of microseconds)."""
    workdir = Path(tempfile.mkdtemp(prefix="lmp-bench-"))
    try:
        base, traced = added_cost(build(workdir, "pingpong"), trips, runs, lambda: Exporter("runqlat"))
    finally:
        shutil.rmtree(workdir)
    return [["lmp exporter runqlat", f"{base:.0f}", f"{traced:.0f}", f"{traced - base:+.0f}"]]


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
    print("Per-syscall cost (getpid loop of %d calls on CPU 0)\n" % args.calls)
    print(table(["probe", "ns per call without", "ns per call with", "added ns", "added vs floor"],
                overhead(args.calls, args.runs)), "\n", flush=True)
    print("Context-switch cost (pipe round trip between two processes: 2 wake-ups, 2+ switches)\n")
    print(table(["probe", "ns per round trip without", "with", "added ns"], switch_cost(100_000, args.runs)),
          "\n", flush=True)
    print(table(["exporter", "start-up s (compile + attach + first answer)", "private dirty MB", "PSS MB", "RSS MB"],
                startup_and_memory(max(1, args.runs // 2 + 1))), "\n", flush=True)
    print(table(["series", "/metrics median ms", "max ms", "body KiB"], scrape_latency((1000, 10000), 20)), "\n")
    print(table(["step", "seconds"], [["scripts/install.sh, second run (what `make run` adds before starting)",
                                       install_seconds()]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
