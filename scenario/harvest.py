"""The end of a recording: detach, read the last events and every exact total out of the maps, close the
threads still alive at the stop time, and free the kernel side."""
from __future__ import annotations

import time
from typing import Any

from .loader import OVERFLOW_MAPS
from .record import ST_NAMES, ST_ON_CPU, ST_UNKNOWN, T_LAST_END, T_LIFETIME, Recorder, Recording, _sum

TABLES = ("syscall_totals", "fault_totals", "block_totals", "tcp_totals", "signal_totals", "sample_totals",
          "uprobe_totals", "request_totals")


def _per_cpu_structs(table: Any) -> dict[int, dict[str, int]]:
    """A per-CPU array of structs, added up over CPUs: index -> {field: total}; zero rows left out."""
    rows: dict[int, dict[str, int]] = {}
    names = [f for f, _ in table.sLeaf._fields_]
    for key, values in table.items():
        row = {f: sum(getattr(v, f) for v in values) for f in names}
        if any(row.values()):
            rows[key.value] = row
    return rows


def _per_cpu_counts(table: Any) -> dict[int, int]:
    return {key.value: n for key, values in table.items() if (n := _sum(values))}


def read_tables(bpf: Any) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    for name in TABLES:
        try:
            table = bpf[name]
        except KeyError:  # its family was not compiled in
            continue
        is_struct = hasattr(table.sLeaf, "_fields_")  # per-CPU maps: sLeaf is one CPU's value
        tables[name] = _per_cpu_structs(table) if is_struct else _per_cpu_counts(table)
    return tables


def close_live_threads(bpf: Any, t_stop: int, totals: dict[str, list[int]]) -> int:
    """Threads still followed at the stop: their current state and lifetime end at t_stop."""
    live = 0
    for _, t in bpf["threads"].items():
        state = ST_ON_CPU if t.state == ST_UNKNOWN else t.state
        totals[ST_NAMES[state]][0] += max(t_stop - t.since, 0)
        totals["lifetime"][0] += max(t_stop - t.born, 0)
        live += 1
    return live


def harvest(rec: Recorder) -> Recording:
    program, bpf = rec.program, rec.program.bpf
    t_stop = time.monotonic_ns()
    program.detach()
    rec.drain()  # what was submitted before the detach
    rec.close()

    slots = [(sum(v.ns for v in values), sum(v.count for v in values)) for _, values in bpf["totals"].items()]
    totals = {name: [ns, n] for name, (ns, n) in zip(ST_NAMES, slots)}
    totals["lifetime"] = list(slots[T_LIFETIME])
    live = close_live_threads(bpf, t_stop, totals)
    last_end = max(v.ns for v in bpf["totals"][bpf["totals"].Key(T_LAST_END)])
    t_end = t_stop if live or not last_end else last_end

    stacks = {key.value: list(bpf["stacks"].walk(key.value)) for key in bpf["stacks"].keys()}
    offcpu = [(k.tgid, k.reason, k.kstack, k.ustack, v.value) for k, v in bpf["offcpu_stacks"].items()]
    oncpu = ([(k.tgid, k.tid, k.kstack, k.ustack, v.value) for k, v in bpf["oncpu_stacks"].items()]
             if "samples" in program.families else [])
    overflow = {OVERFLOW_MAPS[i]: n for i, n in _per_cpu_counts(bpf["lmp_overflow"]).items() if i < len(OVERFLOW_MAPS)}
    recording = Recording(
        t0=rec.t0, t_end=t_end, realtime_offset=time.time_ns() - time.monotonic_ns(),
        totals={k: (v[0], v[1]) for k, v in totals.items()}, tables=read_tables(bpf),
        lost=_per_cpu_counts(bpf["lost"]), produced=_per_cpu_counts(bpf["produced"]), overflow=overflow,
        stacks=stacks, offcpu_stacks=offcpu, oncpu_stacks=oncpu, threads_ended=slots[T_LIFETIME][1],
        threads_live=live, spool=rec.spool_path, kept=rec.kept, dropped=rec.dropped,
        reader_seconds=rec.reader_seconds, maps=rec.maps, tgids=rec.tgids)
    program.close()
    return recording
