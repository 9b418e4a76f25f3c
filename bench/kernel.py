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

from exporters._lib import catalog, paths
from exporters._lib.spec import BenchRun, Spec

from .harness import LOOPS, EmptyProgram, Exporter, added_cost, build, ebpf_exporter, have_peer, libbpf_tool

ROOT = paths.ROOT


def bench_runs(names: list[str] | None = None) -> list[tuple[str, Spec, BenchRun]]:
    """The collectors' bench runs (all, or those of `names`), from their specs, labelled as on the command
    line (`syscalls -o latency=true`)."""
    found = []
    for name in names or catalog.names():
        spec = catalog.load(name)
        for run in spec.bench:
            found.append((" ".join([name, *(f"-o {k}={str(v).lower()}" for k, v in run.options)]), spec, run))
    return found


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


def measured(values: list[float]) -> dict[str, float]:
    """A result as docs/performance.json keeps it."""
    return {"median": round(statistics.median(values)), "min": round(min(values)), "max": round(max(values)),
            "runs": len(values)}


def event_costs(runs: int, names: list[str] | None = None) -> tuple[list[list[str]], dict[str, tuple[float, float | None]],
                                                                     list[dict[str, Any]]]:
    """Rows of (collector, operation, LMP, ebpf_exporter, libbpf-tools, met?) in kernel ns per operation;
    per collector (LMP's median, the best peer's median) for the targets; and the same results for
    docs/performance.json. LMP and its peers take turns, run after run, so that this VM's drift falls on
    all of them alike."""
    rows, verdicts, results = [], {}, []
    workdir = Path(tempfile.mkdtemp(prefix="lmp-bench-"))
    try:
        for label, spec, run in bench_runs(names):
            binary = build(workdir, spec.loop_source(run))
            options = [arg for k, v in run.options for arg in ("-o", f"{k}={str(v).lower()}")]
            operation, n, peer_config, tool = run.operation, run.operations, run.ebpf_exporter, run.libbpf_tools
            contenders: dict[str, Callable[[], Any]] = {"lmp": lambda: Exporter(spec.name, *options)}
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
            results.append({"label": label, "collector": spec.name, "options": dict(run.options), "operation": operation,
                            "lmp_ns": measured(found["lmp"]),
                            "peers": {who: {**measured(v), **({"command": " ".join(tool)} if who == "libbpf-tools" else {})}
                                      for who, v in peers.items()}})
        for name in names or catalog.names():  # said, never silently left out
            spec = catalog.load(name)
            if not spec.bench and spec.kind == "collector":
                rows.append([name, "no `bench:` in its spec", "-", "-", "-", "-"])
    finally:
        shutil.rmtree(workdir)
    return rows, verdicts, results


HOOKS = ("tp", "raw_tp", "tp_btf")


def hook_costs(calls: int, runs: int) -> list[list[str]]:
    """An empty program on raw_syscalls:sys_exit as each hook type: the getpid loop's ns per call without
    and with it (back to back, so that this VM's drift does not count), and the program's own ns per run."""
    rows = []
    workdir = Path(tempfile.mkdtemp(prefix="lmp-bench-"))
    try:
        binary = build(workdir, LOOPS / "getpid.c")
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
