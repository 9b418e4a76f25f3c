"""`lmp bench`'s kernel side: what each collector's programs cost per event, as the kernel counts them
(kernel.bpf_stats_enabled: runs and run time of each program), beside the peers doing the same job on the
same loop: ebpf_exporter's matching example and bcc's libbpf-tools; and what each hook type costs before
any work is done in it, which bpf_stats does not show (the loop's own time, with an empty program)."""
from __future__ import annotations

import shutil
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporters._lib import paths

from .harness import EmptyProgram, Exporter, added_cost, build, ebpf_exporter, have_peer, libbpf_tool

ROOT = paths.ROOT


# collector (and options): (loop in bench/loops, what one operation of it is, operations per run,
# ebpf_exporter's example doing the same job, the libbpf-tools command doing it)
EVENTS: dict[str, tuple[str, str, int, str | None, tuple[str, ...]]] = {
    "syscalls": ("getpid", "getpid syscall", 1_000_000, "syscalls", ("syscount",)),
    "syscalls -o latency=true": ("getpid", "getpid syscall, timed", 1_000_000, None, ("syscount", "-L")),
    "runqlat": ("pingpong", "pipe round trip: 2 wake-ups, 2 switches", 100_000, None, ("runqlat",)),
    "offcpu": ("pingpong", "pipe round trip: 2 wake-ups, 2 switches", 100_000, None, ("offcputime",)),
    "biolatency": ("biolatency", "O_DIRECT 4 KiB read (one block request)", 3_000, "biolatency", ("biolatency", "-D")),
    "irq": ("biolatency", "O_DIRECT 4 KiB read (its disk interrupt)", 3_000, None, ("hardirqs", "-d")),
    "process": ("process", "fork, _exit, waitpid", 2_000, None, ("exitsnoop",)),
    "tcp": ("tcp", "loopback connect, accept, close (~10 state changes)", 5_000, None, ("tcpstates",)),
    "pagefault": ("pagefault", "first touch of an anonymous page", 200_000, None, ()),
    "softirq": ("softirq", "UDP datagram over loopback (one NET_RX)", 50_000, "softirq-latency", ("softirqs", "-d")),
    "fileio": ("fileio", "64-byte write to /dev/null", 1_000_000, None, ()),
    "signal": ("signal", "kill(self, SIGUSR1) to a handler", 200_000, None, ("sigsnoop",)),
    "skbdrop": ("skbdrop", "UDP datagram to a closed loopback port (one drop)", 50_000, "kfree_skb", ()),
}


def spread(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.0f}"
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def program_ns(start: Callable[[], Any], binary: Path, n: int) -> float:
    """Kernel ns per operation of what start() attached, over one loop run: runs per op x ns per run."""
    probe = start()
    try:
        per_op, per_run = probe.program_cost(binary, n, cwd=ROOT)
        return per_op * per_run
    finally:
        probe.stop()


def event_costs(runs: int) -> tuple[list[list[str]], dict[str, tuple[float, float | None]]]:
    """Rows of (collector, operation, LMP, ebpf_exporter, libbpf-tools, met?) in kernel ns per operation,
    and per collector (LMP's median, the best peer's median) for the targets. LMP and its peers take
    turns, run after run, so that this VM's drift falls on all of them alike."""
    rows, verdicts = [], {}
    workdir = Path(tempfile.mkdtemp(prefix="lmp-bench-"))
    try:
        for label, (loop, operation, n, peer_config, tool) in EVENTS.items():
            binary = build(workdir, loop)
            name, *options = label.split()
            contenders: dict[str, Callable[[], Any]] = {"lmp": lambda: Exporter(name, *options)}
            if peer_config and have_peer("ebpf_exporter/ebpf_exporter"):
                contenders["ebpf_exporter"] = lambda: ebpf_exporter(peer_config)
            if tool and have_peer(f"libbpf-tools/{tool[0]}"):
                contenders["libbpf-tools"] = lambda: libbpf_tool(*tool)
            found: dict[str, list[float]] = {who: [] for who in contenders}
            for _ in range(runs):
                for who, start in contenders.items():
                    found[who].append(program_ns(start, binary, n))
            peers = {who: v for who, v in found.items() if who != "lmp"}
            best = min((statistics.median(v) for v in peers.values()), default=None)
            ours = statistics.median(found["lmp"])
            verdicts[label] = (ours, best)
            met = "no peer" if best is None else "met" if ours <= best else "not met"
            rows.append([label, operation, spread(found["lmp"]), spread(peers.get("ebpf_exporter", [])),
                         f"{' '.join(tool)}: {spread(peers['libbpf-tools'])}" if "libbpf-tools" in peers else "-", met])
    finally:
        shutil.rmtree(workdir)
    return rows, verdicts


HOOKS = ("tp", "raw_tp", "tp_btf")


def hook_costs(calls: int, runs: int) -> list[list[str]]:
    """An empty program on raw_syscalls:sys_exit as each hook type: the getpid loop's ns per call without
    and with it (back to back, so that this VM's drift does not count), and the program's own ns per run."""
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="lmp-bench-"))
    try:
        binary = build(workdir, "getpid")
        for kind in HOOKS:
            added, own = [], []
            for _ in range(runs):
                base, probed = added_cost(binary, calls, 1, lambda: EmptyProgram(kind, ("raw_syscalls:sys_exit",)),
                                          cwd=ROOT)
                added.append(probed - base)
                own.append(program_ns(lambda: EmptyProgram(kind, ("raw_syscalls:sys_exit",)), binary, calls))
            rows.append([kind, spread(added), spread(own)])
    finally:
        shutil.rmtree(workdir)
    return rows
