"""`lmp bench`'s scenario section: what following a program costs it, for `lmp scenario run` and for the
tools a user would otherwise reach for (strace, perf trace, perf record), on a syscall-heavy loop
(getpid) and a CPU-bound one (spin); and the memory each tracer uses.

Each loop times itself (wall-clock ns per getpid call; CPU ns per 1000 spin iterations, see
bench/loops/spin.c) and runs pinned to CPU 0; the tracers float. Runs alone and followed alternate,
and each tracer's slowdown is against its own runs alone, so that drift in this VM's speed does not
count as overhead. Memory is the tracer's resident set
(VmHWM, its peak resident set, and Private_Dirty, the anonymous memory that is its alone, read from
/proc every 0.1 s while it follows) and, for lmp, the kernel
memory of its BPF maps (ring buffer, stack traces, hashes: bpftool's bytes_memlock). For lmp the kernel
also counts its programs' run time during the spin loop (kernel.bpf_stats_enabled), as a share of the
loop's CPU time: exact, where the loop's own timings carry this VM's noise."""
from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from exporters._lib.bpf import programs_held_by

from .harness import LOOPS, BpfStats, build, have, program_runs

LMP = [sys.executable, "-m", "lmp"]
GETPID_CALLS, SLOW_CALLS, SPIN_ROUNDS = 2_000_000, 20_000, 3_000_000  # slow: strace and perf trace


def maps_memory(pid: int) -> int:
    """Bytes of kernel memory of the BPF maps a process holds (map_id in its fds' fdinfo)."""
    ids = set()
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            ids.update(int(line.split()[1]) for line in info.read_text().splitlines() if line.startswith("map_id:"))
        except OSError:
            continue
    total = 0
    for map_id in ids:
        out = subprocess.run(["bpftool", "-j", "map", "show", "id", str(map_id)], capture_output=True, text=True)
        if out.returncode == 0:
            total += int(json.loads(out.stdout).get("bytes_memlock", 0))
    return total


def _memory_mb(pid: int) -> dict[str, float]:
    """VmHWM (peak resident set) and Private_Dirty (anonymous memory that is this process's alone)."""
    found = {}
    for name, keys in (("status", ("VmHWM",)), ("smaps_rollup", ("Private_Dirty",))):
        try:
            lines = Path(f"/proc/{pid}/{name}").read_text().splitlines()
        except OSError:
            continue
        found.update({k: int(v.split()[0]) / 1024 for k, v in (line.split(":", 1) for line in lines if ":" in line)
                      if k in keys})
    return found


def events_lost(out: Path) -> tuple[int, int, float]:
    """(events lost, events made, events its reader read per second spent reading) of the lmp run whose
    results are in out; zeros for another tracer."""
    try:
        b = json.loads((out / "breakdown.json").read_text())
    except OSError:
        return 0, 0, 0.0
    made, lost = sum(e["made"] for e in b["events"].values()), sum(e["lost"] for e in b["events"].values())
    return lost, made, (b["events_kept"] + b["events_over_cap"]) / max(b["reader_seconds"], 1e-9)


def traced(prefix: list[str], loop: list[str], workdir: Path, stats: bool) -> tuple[float, float, float, float, int,
                                                                                      tuple[int, int, float]]:
    """(the loop's own number, tracer's peak RSS MB, its private memory while following, its BPF maps MB,
    ns its BPF programs ran, as the kernel counts them, lmp's events lost, made and read per second)."""
    out_file = workdir / "loop.out"
    subprocess.run(["rm", "-rf", str(workdir / "out")], check=False)  # lmp's results: this run's only
    peak = rss = kernel = 0.0
    ids: set[int] = set()
    program_ns = 0
    # The statistics cost two clock reads a program run: on for the spin loop (a few hundred runs a
    # second), off for the getpid loop, whose slowdown they would inflate.
    with open(out_file, "w") as out, (BpfStats() if stats else contextlib.nullcontext()):
        proc = subprocess.Popen([*prefix, "taskset", "-c", "0", *loop], stdout=out, stderr=subprocess.DEVNULL)
        while proc.poll() is None:
            if prefix:
                mem = _memory_mb(proc.pid)
                peak, rss = max(peak, mem.get("VmHWM", 0.0)), mem.get("Private_Dirty", rss)
            if prefix[:len(LMP)] == LMP:
                try:
                    kernel = max(kernel, maps_memory(proc.pid) / (1 << 20))
                    ids = ids or programs_held_by(proc.pid)
                    if stats and ids:
                        program_ns = max(program_ns, program_runs(ids)[1])
                except OSError:
                    pass
            time.sleep(0.1)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(prefix[:3])} failed with {proc.returncode}")
    return float(out_file.read_text().split()[-1]), peak, rss, kernel, program_ns, events_lost(workdir / "out")


def median_of(runs: int, prefix: list[str], loop: list[str], work: Path, stats: bool = False) -> tuple[float, ...]:
    """(median alone, median followed, peak RSS, private, maps, median program ns, the most events lost
    (with the events made and the reader's rate in that run), the reader's slowest rate): alone and
    followed runs alternate, so that drift in the VM's speed falls on both alike."""
    alone, followed = [], []
    for _ in range(runs):
        alone.append(traced([], loop, work, stats)[0])
        followed.append(traced(prefix, loop, work, stats))
    return (statistics.median(alone), statistics.median(r[0] for r in followed), max(r[1] for r in followed),
            max(r[2] for r in followed), max(r[3] for r in followed), statistics.median(r[4] for r in followed),
            max(r[5] for r in followed), min(r[5][2] for r in followed))


def rows(runs: int) -> list[list[str]]:
    work = Path(tempfile.mkdtemp(prefix="lmp-bench-scenario-"))
    getpid, spin = build(work, LOOPS / "getpid.c"), build(work, LOOPS / "spin.c")
    # Every event kept (the default --max-events is half the loop's): the reader writes them all.
    scenario = [*LMP, "scenario", "run", "--quiet", "--max-events", str(2 * GETPID_CALLS), "-o", str(work / "out"),
                "--"]
    tools = [("lmp scenario run (all events)", scenario, True),
             ("lmp scenario run --events syscalls", [*scenario[:-1], "--events", "syscalls", "--"], True),
             ("strace -f", ["strace", "-f", "-qq", "-o", "/dev/null"], have("strace")),
             ("perf trace", ["perf", "trace", "-o", "/dev/null"], have("perf")),
             ("perf record -F 99 -g", ["perf", "record", "-F", "99", "-g", "-q", "-o", str(work / "perf.data"), "--"],
              have("perf"))]
    table = []
    try:
        for label, prefix, available in tools:
            if not available:
                continue
            calls = SLOW_CALLS if label.startswith(("strace", "perf trace")) else GETPID_CALLS
            g_loop, s_loop = [str(getpid), str(calls)], [str(spin), str(SPIN_ROUNDS)]
            g, s = median_of(runs, prefix, g_loop, work), median_of(runs, prefix, s_loop, work, stats=True)
            table.append([label, f"{g[0]:.0f}", f"{g[1]:.0f}", f"{g[1] / g[0]:.1f}x", f"{s[0]:.0f}", f"{s[1]:.0f}",
                          f"{100 * (s[1] / s[0] - 1):+.1f}%", f"{max(g[2], s[2]):.0f}", f"{max(g[3], s[3]):.0f}",
                          f"{max(g[4], s[4]):.1f}" if g[4] else "-",
                          f"{100 * s[5] / (s[0] * SPIN_ROUNDS):.3f}%" if s[5] else "-",
                          f"{g[6][0]:,} of {g[6][1]:,}" if g[6][1] else "-", f"{g[7] / 1e6:.1f}" if g[7] else "-"])
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return table


HEADER = ["followed by", "getpid ns/call alone", "followed", "slowdown", "spin CPU ns/1000 alone", "followed",
          "spin slowdown", "tracer peak RSS MB", "tracer private MB", "lmp BPF maps MB", "lmp programs CPU, % of spin",
          "lmp events lost on getpid", "lmp reader M events/s"]
