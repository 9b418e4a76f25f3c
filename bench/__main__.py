"""`lmp bench` (or `python -m bench`): measures, in one run and side by side with the peers
(../shared/peers: Cloudflare's ebpf_exporter and bcc's libbpf-tools),
- footprint: the whole default stack's memory per process and summed, and how soon each exporter answers;
  ebpf_exporter doing its four jobs, and LMP doing the same four;
- hooks: what each hook type adds per event before any work (an empty program on sys_exit);
- events: each collector's kernel time per event (bpf_stats), beside ebpf_exporter's and libbpf-tools';
- scrape: /metrics latency at 1k and 10k series, and for the four jobs beside ebpf_exporter;
- functions: netguard's cost per packet and connguard's per connect() (bench/guard.py);
- l7: what the l7 collector costs nginx at full load under ab, and its kernel time per request (bench/l7.py);
- scenario: what `lmp scenario run` costs the program it follows, beside strace and perf;
then the targets of docs/performance.md, each met or not. Prints Markdown. Needs root, like the exporters;
run it under `flock /tmp/lmp-bpf.lock` beside anything else that loads BPF programs."""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from exporters._lib import paths, results

from . import footprint, kernel, scrape
from .harness import Exporter, ebpf_exporter, have_peer

ROOT = paths.ROOT
SECTIONS = ("footprint", "hooks", "events", "scrape", "functions", "l7", "scenario")


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def show(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"{title}\n\n{table(header, rows)}\n", flush=True)


def lone_startup(names: list[str], runs: int) -> list[list[str]]:
    """`lmp exporter NAME` on its own (a fresh interpreter): seconds to its first answer, and its memory."""
    rows = []
    for name in names:
        seconds, memory = [], []
        for _ in range(runs):
            exporter = Exporter(name)
            time.sleep(0.5)
            seconds.append(exporter.seconds)
            memory.append(exporter.memory_mb())
            exporter.stop()
        rows.append([name, footprint.spread(seconds, "{:.2f}"), footprint.spread([m["pss"] for m in memory]),
                     footprint.spread([m["private"] for m in memory])])
    return rows


def peer_footprint(runs: int) -> tuple[list[list[str]], dict[str, float]]:
    """ebpf_exporter with its four examples, and LMP's `lmp run` doing the same four jobs (no admin)."""
    rows, found = [], {}
    if have_peer("ebpf_exporter/ebpf_exporter"):
        peers = []
        for _ in range(runs):
            peer = ebpf_exporter(*footprint.PEER_JOBS.values())
            time.sleep(1.0)
            peers.append((peer.seconds, peer.memory_mb()))
            peer.stop()
        found["peer_pss"] = statistics.median(m["pss"] for _, m in peers)
        rows.append(["ebpf_exporter (one process)", footprint.spread([s for s, _ in peers], "{:.2f}"),
                     footprint.spread([m["pss"] for _, m in peers]), footprint.spread([m["private"] for _, m in peers])])
    stacks = [footprint.measure_run(list(footprint.PEER_JOBS), admin=False) for _ in range(runs)]
    jobs = [f"lmp-{n}" for n in footprint.PEER_JOBS]
    exporters = [sum(s.memory[j]["pss"] for j in jobs) for s in stacks]
    everything = [sum(m["pss"] for m in s.memory.values()) for s in stacks]
    private = [sum(m["private"] for m in s.memory.values()) for s in stacks]
    found["lmp_four_pss"] = statistics.median(everything)
    rows.append(["lmp run, its 4 exporters", footprint.spread([max(s.answered.values()) for s in stacks], "{:.2f}"),
                 footprint.spread(exporters), footprint.spread([sum(s.memory[j]["private"] for j in jobs) for s in stacks])])
    rows.append(["lmp run, all its processes (launcher, spawner, 4 exporters)", "-", footprint.spread(everything),
                 footprint.spread(private)])
    return rows, found


def install_seconds() -> str:
    """The install step with nothing to do: a first run brings everything current, the second is timed."""
    install = ["bash", str(ROOT / "scripts" / "install.sh")]
    subprocess.run(install, check=True, capture_output=True)
    started = time.monotonic()
    subprocess.run(install, check=True, capture_output=True)
    return f"{time.monotonic() - started:.2f}"


def machine() -> str:
    release = os.uname().release.split("-")[0]
    return f"{len(os.sched_getaffinity(0))} CPUs, kernel {release}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lmp bench", description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=2_000_000, help="getpid calls per loop run (hook types)")
    p.add_argument("--runs", type=int, default=5, help="repetitions; medians (and ranges) are shown")
    p.add_argument("--only", choices=SECTIONS, action="append", help="only these sections (repeatable)")
    p.add_argument("--collector", action="append", metavar="NAME",
                   help="events: only this collector's runs (repeatable; default: every collector's `bench:`)")
    args = p.parse_args(argv)
    only = set(args.only or SECTIONS)
    print(f"kernel {os.uname().release}, {len(os.sched_getaffinity(0))} CPUs; medians (and ranges) of "
          f"{args.runs} runs\n", flush=True)
    targets: list[list[str]] = []

    if "footprint" in only:
        rows, totals = footprint.stack_rows(args.runs)
        show("Memory of the default stack under `lmp run` (Prometheus aside), MB", ["process", "PSS", "private"], rows)
        start_rows = [[n, footprint.spread(totals["answered"][n], "{:.2f}"),
                       footprint.spread(totals["from_fork"][n], "{:.2f}") if n in totals["from_fork"] else "-"]
                      for n in totals["answered"]]
        show("Start-up under `lmp run`: seconds to the first answer, from `lmp run`'s start and from the "
             "exporter's fork (all nine start at once, on these CPUs)", ["process", "from lmp run", "from its fork"],
             start_rows)
        lone = lone_startup(footprint.default_collectors(), max(1, args.runs // 2))
        show("Each exporter on its own (`lmp exporter NAME`, a fresh interpreter)",
             ["exporter", "seconds to first answer", "PSS MB", "private MB"], lone)
        peer_rows, found = peer_footprint(args.runs)
        show("ebpf_exporter's four jobs (syscalls, biolatency, kfree_skb, softirq-latency), and LMP doing them",
             ["what", "seconds to answer", "PSS MB", "private MB"], peer_rows)
        results.save({"exporter_pss_mb": round(totals["exporters_pss"] / len(footprint.default_collectors()), 1)})
        targets += [
            ["the nine default exporters hold at most 40 MB PSS", f"{totals['exporters_pss']:.1f} MB",
             verdict(totals["exporters_pss"] <= 40)],
            ["the whole default stack holds at most 100 MB PSS", f"{totals['pss']:.1f} MB", verdict(totals["pss"] <= 100)],
            ["each exporter answers within 0.2 s of its start (its fork)", f"slowest {totals['slowest_from_fork']:.2f} s",
             verdict(totals["slowest_from_fork"] <= 0.2)],
            ["all nine answer within 1 s of `lmp run`'s start", f"{totals['all_answered']:.2f} s",
             verdict(totals["all_answered"] <= 1.0)],
        ]
    if "hooks" in only:
        show(f"What a hook costs before any work: an empty program on raw_syscalls:sys_exit, getpid loop of "
             f"{args.calls:,} calls on CPU 0", ["hook type", "added ns per call (loop)", "program ns per run (bpf_stats)"],
             kernel.hook_costs(args.calls, args.runs))
    if "events" in only:
        rows, verdicts, measured = kernel.event_costs(args.runs, args.collector)
        results.save({"kernel_time": measured, "machine": machine()})
        show("Kernel time per event (bpf_stats: program runs x ns per run, per operation of the loop), beside the "
             "peers doing the same job", ["collector", "operation", "LMP ns", "ebpf_exporter ns", "libbpf-tools ns",
                                          "at or below the best peer"], rows)
        behind = [label for label, (ours, best) in verdicts.items() if best is not None and ours > best]
        targets.append(["kernel time per event at or below the best peer's, for every job a peer does",
                        "behind on " + ", ".join(behind) if behind else "ahead or equal on every one", verdict(not behind)])
    if "scrape" in only:
        show("/metrics latency through the real path, ms", ["series", "/metrics ms", "body KiB"],
             scrape.series_latency((1000, 10000), 20))
        show("/metrics latency for the four jobs, ms", ["exporter", "/metrics ms", "body KiB"],
             scrape.peer_latency(20))
    if "functions" in only:
        from . import guard
        header = ["configuration", "op ns without", "op ns with", "added ns", "program runs per op", "ns per run"]
        net, conn = guard.netguard_costs(args.runs), guard.connguard_costs(args.runs)
        show("netguard: one UDP datagram over a veth pair into a namespace whose end runs XDP in generic mode",
             header, net)
        show("connguard: a loopback TCP connection from a guarded cgroup, and a refused connect", header, conn)
        results.save({"kernel_time": guard.results(net + conn)})
    if "l7" in only:
        from . import l7
        rows, worst = l7.costs(args.runs)
        results.save({"kernel_time": worst.pop("results", [])})
        show(f"l7: nginx (one worker on CPU 0) under ab (CPU 1), {l7.REQUESTS:,} requests a run, without and with "
             f"the collector", ["workload", "req/s without", "req/s with", "throughput loss %",
                                "kernel ns per request (both sides)", "kernel ns per request seen (one side)"], rows)
        for workload in ("keep-alive", "new connections"):
            targets += [[f"l7: at most 500 ns of kernel time per HTTP request ({workload}, per request seen)",
                         f"{worst[workload]['ns']:.0f} ns", verdict(worst[workload]["ns"] <= 500)],
                        [f"l7: at most 5 % throughput loss at full load ({workload})",
                         f"{worst[workload]['loss']:.1f} %", verdict(worst[workload]["loss"] <= 5)]]
        targets += [["l7: its lone exporter holds at most 1 MB PSS more after its runs than the syscalls exporter",
                     f"{worst['pss']:.1f} MB against {worst['pss_syscalls']:.1f}",
                     verdict(worst["pss"] <= worst["pss_syscalls"] + 1)]]
    if "scenario" in only:
        from . import scenario
        show(f"Following one program with lmp scenario and its peers (getpid: {scenario.GETPID_CALLS} calls, "
             f"{scenario.SLOW_CALLS} under strace and perf trace; spin: {scenario.SPIN_ROUNDS} x 1000 iterations)",
             scenario.HEADER, scenario.rows(args.runs))
    if only == set(SECTIONS):
        show("The install step", ["step", "seconds"],
             [["scripts/install.sh, second run (what `make run` adds before starting)", install_seconds()]])
    if targets:
        show("Targets", ["target", "measured", "verdict"], targets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
