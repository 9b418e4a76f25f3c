"""`lmp bench` (or `python -m bench`): measures, in one run and side by side,
- the added cost per syscall of the syscalls collector, of an empty program (the floor) and of bcc's syscount;
- each collector's added cost per event it traces, against the floor and a bcc peer where one runs here;
- each exporter's start-up (compile + attach until the first /metrics answer) and memory after start;
- netguard's added cost per packet (pass and drop paths, against no program and an empty XDP program) and
  connguard's per connect() (bench/guard.py);
- /metrics latency at 1k and 10k series; the time of a second, nothing-to-do install;
- what `lmp scenario run` costs the program it follows, beside strace, perf trace and perf record.
Prints Markdown tables (the ones in docs/performance.md). Needs root, like the exporters."""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from exporters._lib import catalog

from . import guard
from .harness import EmptyProgram, Exporter, Peer, added_cost, build, free_port, get, have

ROOT = Path(__file__).resolve().parent.parent

# collector: (loop in bench/loops, what one operation of it is, operations per run, bcc peer command)
EVENTS: dict[str, tuple[str, str, int, tuple[str, ...]]] = {
    "syscalls": ("getpid", "getpid syscall", 2_000_000, ("syscount-bpfcc",)),
    "runqlat": ("pingpong", "pipe round trip: 2 wake-ups, 2 switches", 100_000, ("runqlat-bpfcc", "5")),
    "offcpu": ("pingpong", "pipe round trip: 2 wake-ups, 2 switches", 100_000, ("offcputime-bpfcc",)),
    "biolatency": ("biolatency", "O_DIRECT 4 KiB read (one block request)", 3_000, ()),
    "irq": ("biolatency", "O_DIRECT 4 KiB read (one disk interrupt)", 3_000, ("hardirqs-bpfcc", "-d", "5")),
    "process": ("process", "fork, _exit, waitpid", 2_000, ("exitsnoop-bpfcc",)),
    "tcp": ("tcp", "loopback connect, accept, close (~10 state changes)", 5_000, ("tcpstates-bpfcc",)),
    "pagefault": ("pagefault", "first touch of an anonymous page", 200_000, ()),
    "softirq": ("softirq", "UDP datagram over loopback (one NET_RX)", 50_000, ("softirqs-bpfcc", "-d", "5")),
    "fileio": ("fileio", "64-byte write to /dev/null", 1_000_000, ()),
    "signal": ("signal", "kill(self, SIGUSR1) to a handler", 200_000, ()),
    "skbdrop": ("skbdrop", "UDP datagram to a closed loopback port (one drop)", 50_000, ()),
}


def syscall_overhead(calls: int, runs: int) -> list[list[str]]:
    workdir = Path(tempfile.mkdtemp(prefix="lmp-bench-"))
    try:
        binary = build(workdir, "getpid")
        probes = [("empty program on raw_syscalls:sys_exit (the floor)", lambda: EmptyProgram(("raw_syscalls:sys_exit",))),
                  ("lmp exporter syscalls", lambda: Exporter("syscalls")),
                  ("lmp exporter syscalls -o latency=true", lambda: Exporter("syscalls", "-o", "latency=true"))]
        if have("syscount-bpfcc"):
            probes.append(("syscount-bpfcc (bcc's tool, the peer)", lambda: Peer("syscount-bpfcc")))
        results = [(label, *added_cost(binary, calls, runs, start)) for label, start in probes]
    finally:
        shutil.rmtree(workdir)
    floor = results[0][2] - results[0][1]
    return [[label, f"{base:.0f}", f"{with_probe:.0f}", f"{with_probe - base:+.0f}",
             f"{(with_probe - base) / floor:.2f}x"] for label, base, with_probe in results]


def event_costs(runs: int) -> list[list[str]]:
    """Per collector: its loop without and with the exporter, with the floor (an empty program on each of
    the collector's tracepoints), and with the bcc peer when it runs on this kernel."""
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="lmp-bench-"))
    try:
        for name, (loop, operation, n, peer) in EVENTS.items():
            binary = build(workdir, loop)
            spec = catalog.load(name)
            base, with_exporter = added_cost(binary, n, runs, lambda: Exporter(name), cwd=ROOT)
            floor_base, with_floor = added_cost(binary, n, runs, lambda: EmptyProgram(spec.tracepoints, spec.raw_tracepoints), cwd=ROOT)
            added, floor = with_exporter - base, with_floor - floor_base
            exporter = Exporter(name)
            try:
                runs_per_op, ns_per_run = exporter.program_cost(binary, n, cwd=ROOT)
            finally:
                exporter.stop()
            peer_cell = "no peer runs here"
            if peer and have(peer[0]):
                try:
                    peer_base, with_peer = added_cost(binary, n, runs, lambda: Peer(*peer), cwd=ROOT)
                    peer_cell = f"{peer[0]}: {with_peer - peer_base:+.0f}"
                except RuntimeError as err:
                    peer_cell = f"{peer[0]} fails here ({err})"
            rows.append([name, operation, f"{runs_per_op:.2f}", f"{ns_per_run:.0f}",
                         f"{runs_per_op * ns_per_run:.0f}", f"{base:.0f}", f"{added:+.0f}", f"{floor:+.0f}", peer_cell])
    finally:
        shutil.rmtree(workdir)
    return rows


def startup_and_memory(runs: int, names: list[str] | None = None) -> list[list[str]]:
    rows = []
    for name in names or catalog.names():
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
    """/metrics through the real path (BPF map -> collector -> exposition -> HTTP) on a filled map."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    from exporters._lib import bpf
    from exporters._lib.collector import BpfCollector, SelfCollector
    from exporters._lib.exporter import MetricsApp, bind

    spec = catalog.load("series", [Path(__file__).resolve().parent])
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
                table[table.Key(i % 512, i // 512 + 1)] = table.Leaf(*([1] * table.total_cpu))
            get(f"http://127.0.0.1:{port}/metrics")  # warm the label caches, as a running exporter has them
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
        app.collector.close()
    return rows


def functions(runs: int) -> None:
    header = ["configuration", "op ns without", "op ns with", "added ns", "program runs per op", "ns per run"]
    print("Function components. netguard: one UDP datagram over a veth pair into a namespace whose end runs\n"
          "XDP in generic mode (the send carries the datagram through XDP and the receiving stack); connguard:\n"
          "one loopback TCP connection (connect, accept, close) from a guarded cgroup, and one refused connect.\n")
    print(table(header, guard.netguard_costs(runs)), "\n", flush=True)
    print(table(header, guard.connguard_costs(runs)), "\n", flush=True)


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
    p.add_argument("--only", choices=["functions", "scenario"],
                   help="only the function components' tables, or only the scenario recorder's")
    args = p.parse_args(argv)
    if args.only == "scenario":
        from . import scenario
        print(table(scenario.HEADER, scenario.rows(args.runs)))
        return 0
    print(f"kernel {os.uname().release}, {len(os.sched_getaffinity(0))} CPUs; medians of {args.runs} runs\n", flush=True)
    if args.only == "functions":
        functions(args.runs)
        print(table(["exporter", "start-up s (compile + attach + first answer)", "private dirty MB", "PSS MB", "RSS MB"],
                    startup_and_memory(max(1, args.runs // 2), ["netguard", "connguard"])))
        return 0
    print(f"Per-syscall cost (getpid loop of {args.calls} calls on CPU 0)\n")
    print(table(["probe", "ns per call without", "ns per call with", "added ns", "added vs floor"],
                syscall_overhead(args.calls, args.runs)), "\n", flush=True)
    print("Per-event cost of each collector. Program runs and ns per run are the kernel's own count\n"
          "(kernel.bpf_stats_enabled) over one loop; the loop columns time the whole operation on CPU 0\n"
          "without and with the exporter, the floor (an empty program on each of its tracepoints) and a bcc\n"
          "peer, each back to back with its own baseline: these include this VM's noise.\n")
    print(table(["collector", "operation", "program runs per op", "ns per run", "program ns per op",
                 "op ns without", "loop: added ns", "loop: floor added ns", "loop: bcc peer added ns"],
                event_costs(args.runs)), "\n", flush=True)
    functions(args.runs)
    print(table(["exporter", "start-up s (compile + attach + first answer)", "private dirty MB", "PSS MB", "RSS MB"],
                startup_and_memory(max(1, args.runs // 2))), "\n", flush=True)
    print(table(["series", "/metrics median ms", "max ms", "body KiB"], scrape_latency((1000, 10000), 20)), "\n")
    print(table(["step", "seconds"], [["scripts/install.sh, second run (what `make run` adds before starting)",
                                       install_seconds()]]), "\n")
    from . import scenario
    print(f"Following one program with lmp scenario and its peers (getpid: {scenario.GETPID_CALLS} calls, "
          f"{scenario.SLOW_CALLS} under strace and perf trace; spin: {scenario.SPIN_ROUNDS} x 1000 iterations)\n")
    print(table(scenario.HEADER, scenario.rows(args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
