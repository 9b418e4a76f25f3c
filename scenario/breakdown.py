"""Where the wall-clock time went, from the kernel's exact totals: on the CPU (split into user and kernel
by the samples' share), off it by reason, waiting in the run queue; the time inside each syscall (which
overlaps the rest: a syscall runs on the CPU and may sleep); and the counts of every other event family.

Each followed thread's lifetime is split into its states with nothing left over, so the parts add up
to the threads' summed lifetimes ("thread-seconds"). For a single-threaded program that is its
wall-clock time; with several threads or children the thread-seconds exceed the wall time, and the
parts add up to the thread-seconds."""
from __future__ import annotations

from typing import Any

from exporters._lib import decoders

from .events import KIND_NAMES, TCP_KINDS
from .record import Recording
from .requests import PROTOCOLS, ROLES

PARTS = (  # (key, label)
    ("on_cpu_user", "on CPU, user"), ("on_cpu_kernel", "on CPU, kernel"),
    ("sleeping", "off CPU, sleeping"), ("uninterruptible", "off CPU, uninterruptible (disk, locks)"),
    ("other", "off CPU, stopped or other"), ("preempted", "preempted, waiting for a CPU"),
    ("runqueue", "run-queue wait (woken to running)"),
)
NS = 1e-9


def build(rec: Recording, probes: list[str]) -> dict[str, Any]:
    t = rec.tables
    samples = t.get("sample_totals", {})
    user_samples, kernel_samples = samples.get(0, 0), samples.get(1, 0)
    on_cpu = rec.totals["on_cpu"][0]
    user_share = user_samples / (user_samples + kernel_samples) if user_samples + kernel_samples else None
    parts = {"on_cpu_user": on_cpu * (user_share if user_share is not None else 0.0),
             "on_cpu_kernel": on_cpu * (1 - user_share if user_share is not None else 1.0)}
    parts.update({k: rec.totals[k][0] for k in ("sleeping", "uninterruptible", "other", "preempted", "runqueue")})
    wall = rec.t_end - rec.t0
    threads = rec.threads_ended + rec.threads_live
    accounted, lifetime = sum(parts.values()), rec.totals["lifetime"][0]
    reference = wall if threads <= 1 else lifetime
    syscalls = sorted(({"name": decoders.syscall(nr), "nr": nr, "count": row["count"], "errors": row["errors"],
                        "seconds": row["ns"] * NS} for nr, row in t.get("syscall_totals", {}).items()),
                      key=lambda s: (-s["seconds"], s["name"]))
    block = t.get("block_totals", {})
    return {
        "wall_seconds": wall * NS, "threads": threads, "thread_seconds": lifetime * NS,
        "parts": {k: v * NS for k, v in parts.items()},
        "accounted_seconds": accounted * NS,
        "accounted_vs_reference": (accounted - reference) / reference if reference else 0.0,
        "reference": "wall_seconds" if threads <= 1 else "thread_seconds",
        "user_kernel_split": "samples" if user_share is not None else "no samples: all counted as kernel",
        "counts": {"offcpu_intervals": {k: rec.totals[k][1] for k in ("sleeping", "uninterruptible", "other",
                                                                      "preempted")},
                   "runqueue_waits": rec.totals["runqueue"][1]},
        "syscalls": syscalls,
        "samples": {"user": user_samples, "kernel": kernel_samples},
        "faults": {"user": t.get("fault_totals", {}).get(0, 0), "kernel": t.get("fault_totals", {}).get(1, 0)},
        "block": {"requests": block.get(0, 0), "bytes": block.get(1, 0), "seconds": block.get(2, 0) * NS,
                  **{op: block.get(i, 0) for i, op in enumerate(("reads", "writes", "flushes", "discards", "other"), 3)}},
        "tcp": {k: t.get("tcp_totals", {}).get(i, 0) for i, k in enumerate(TCP_KINDS)},
        "signals": {"generated": t.get("signal_totals", {}).get(0, 0),
                    "delivered": t.get("signal_totals", {}).get(1, 0)},
        "uprobes": [{"probe": p, "count": t.get("uprobe_totals", {}).get(i, {}).get("count", 0),
                     "seconds": t.get("uprobe_totals", {}).get(i, {}).get("ns", 0) * NS} for i, p in enumerate(probes)],
        "requests": _requests(t.get("request_totals", {})),
        "events": {KIND_NAMES[k]: {"made": rec.produced.get(k, 0), "lost": rec.lost.get(k, 0)}
                   for k in sorted(rec.produced) if k != 2} | _syscall_events(rec),
        "events_kept": rec.kept, "events_over_cap": rec.dropped, "reader_seconds": rec.reader_seconds,
        "map_overflow": rec.overflow,
    }


def _requests(rows: dict[int, dict[str, int]]) -> list[dict[str, Any]]:
    """The requests answered, by protocol and role, counted in the kernel (exact, whatever events were lost)."""
    return [{"protocol": PROTOCOLS[i // 2] if i // 2 < len(PROTOCOLS) else str(i // 2), "role": ROLES[i % 2],
             "count": row["count"], "seconds": row["ns"] * NS} for i, row in sorted(rows.items())]


def _syscall_events(rec: Recording) -> dict[str, dict[str, int]]:
    """Syscall events come in two kinds (with a path or not): one row."""
    made = rec.produced.get(1, 0) + rec.produced.get(2, 0)
    return {"syscall": {"made": made, "lost": rec.lost.get(1, 0) + rec.lost.get(2, 0)}} if made else {}


def table(b: dict[str, Any], top: int = 12) -> str:
    """The breakdown as the terminal shows it."""
    ref = b[b["reference"]] or 1e-12
    lines = [f"{'where the time went':<44}{'seconds':>10}{'share':>9}"]
    for key, label in PARTS:
        if key == "on_cpu_user" and b["samples"]["user"] + b["samples"]["kernel"]:
            n = b["samples"]["user"] + b["samples"]["kernel"]
            label += f" ({n} sample{'s' if n != 1 else ''})"
        lines.append(f"  {label:<42}{b['parts'][key]:>10.4f}{100 * b['parts'][key] / ref:>8.1f}%")
    what = "wall-clock time" if b["reference"] == "wall_seconds" else f"thread-seconds of {b['threads']} threads"
    lines.append(f"  {'total':<42}{b['accounted_seconds']:>10.4f}{100 * b['accounted_seconds'] / ref:>8.1f}%"
                 f"   of {ref:.3f} s {what} (wall {b['wall_seconds']:.3f} s)")
    if b["syscalls"]:
        lines += ["", f"{'syscalls (time inside; overlaps the above)':<44}{'count':>8}{'errors':>8}{'seconds':>10}"]
        lines += [f"  {s['name']:<42}{s['count']:>8}{s['errors']:>8}{s['seconds']:>10.6f}" for s in b["syscalls"][:top]]
        if len(b["syscalls"]) > top:
            lines.append(f"  ... {len(b['syscalls']) - top} more in breakdown.json")
    if b.get("requests"):
        lines += ["", f"{'requests answered (spans on the timeline)':<44}{'count':>8}{'':>8}{'seconds':>10}"]
        lines += [f"  {r['protocol'] + ', ' + r['role']:<42}{r['count']:>8}{'':>8}{r['seconds']:>10.6f}"
                  for r in b["requests"]]
    lines += ["", "events: " + summary(b)]
    return "\n".join(lines)


def summary(b: dict[str, Any]) -> str:
    f, blk, tcp, sig = b["faults"], b["block"], b["tcp"], b["signals"]
    parts = [f"{f['user'] + f['kernel']} page faults ({f['user']} user, {f['kernel']} kernel)",
             f"{blk['requests']} block requests issued by it ({blk['reads']} reads, {blk['writes']} writes, "
             f"{blk['flushes']} flushes; {blk['bytes'] / 1024:.0f} KiB, {blk['seconds'] * 1e3:.1f} ms)",
             f"{tcp['state']} TCP state changes, {tcp['retransmit']} retransmits, "
             f"{tcp['reset_sent'] + tcp['reset_received']} resets",
             f"{sig['generated']} signals sent, {sig['delivered']} handled"]
    parts += [f"{u['count']} calls of {u['probe']} ({u['seconds'] * 1e3:.2f} ms)" for u in b["uprobes"]]
    lost = sum(e["lost"] for e in b["events"].values())
    made = sum(e["made"] for e in b["events"].values())
    parts.append(f"{lost} of {made} events lost (ring buffer full)" if lost else f"all {made} events recorded")
    if b["events_over_cap"]:
        parts.append(f"{b['events_over_cap']} events over --max-events not kept")
    return "; ".join(parts)
