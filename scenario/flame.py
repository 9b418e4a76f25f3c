"""Flame graphs: stacks folded as flamegraph.pl reads them (`a;b;c 42`, root first), the same as
speedscope JSON, a nested tree for the HTML report, and the difference of two runs (difffolded.pl's
`stack A B`).

On-CPU stacks are weighted in samples (99 a second while on a CPU), off-CPU stacks in nanoseconds off
the CPU, from the switch out to the switch back in. Frames, root first: the process name, for off-CPU
the reason (sleeping, uninterruptible, preempted, other), the user frames, then the kernel frames
(ending in `_[k]`)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from .events import REASONS
from .record import Recording
from .symbols import Symbolizer

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"  # a name, never fetched
# The tracing machinery that called the recorder's program, innermost in a kernel stack taken at a
# tracepoint. `__traceiter_sched_switch` shows only while more than one program is attached to the
# tracepoint (an exporter's too): left in, the same wait would make two different stacks.
TRACING_FRAMES = ("__traceiter_", "__bpf_trace_", "bpf_trace_run", "perf_trace_", "perf_tp_event")


def frames(sym: Symbolizer, rec: Recording, tgid: int, kstack: int, ustack: int) -> list[str]:
    """User then kernel frames, root first. A return address points after its call, so every frame
    but the innermost is looked up one byte earlier, inside the call."""
    out: list[str] = []
    user = rec.stacks.get(ustack, []) if ustack >= 0 else []
    for i, addr in enumerate(reversed(user)):
        out.append(sym.user(tgid, addr - 1 if i < len(user) - 1 else addr))
    if ustack < 0 and kstack < 0:
        out.append("[no stack]")
    kernel = rec.stacks.get(kstack, []) if kstack >= 0 else []
    inner = [sym.kernel(addr - 1 if i < len(kernel) - 1 else addr) for i, addr in enumerate(reversed(kernel))]
    while inner and inner[-1].startswith(TRACING_FRAMES):
        inner.pop()
    return out + inner


def oncpu(rec: Recording, sym: Symbolizer, names: dict[int, str]) -> Counter[str]:
    folded: Counter[str] = Counter()
    for tgid, _tid, kstack, ustack, count in rec.oncpu_stacks:
        folded[";".join([names.get(tgid, str(tgid)), *frames(sym, rec, tgid, kstack, ustack)])] += count
    return folded


def offcpu(rec: Recording, sym: Symbolizer, names: dict[int, str]) -> Counter[str]:
    folded: Counter[str] = Counter()
    for tgid, reason, kstack, ustack, ns in rec.offcpu_stacks:
        head = [names.get(tgid, str(tgid)), f"[{REASONS.get(reason, 'other')}]"]
        folded[";".join([*head, *frames(sym, rec, tgid, kstack, ustack)])] += ns
    return folded


def folded_text(folded: Counter[str]) -> str:
    return "".join(f"{stack} {n}\n" for stack, n in sorted(folded.items()))


def parse_folded(text: str) -> Counter[str]:
    folded: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            folded[stack] += int(n)
    return folded


def speedscope(folded: Counter[str], name: str, unit: str) -> dict[str, Any]:
    """A speedscope file with one sampled profile: one sample per distinct stack, weighted."""
    index: dict[str, int] = {}
    samples, weights = [], []
    for stack, n in sorted(folded.items()):
        samples.append([index.setdefault(f, len(index)) for f in stack.split(";")])
        weights.append(n)
    return {"$schema": SPEEDSCOPE_SCHEMA, "exporter": "lmp scenario", "name": name, "activeProfileIndex": 0,
            "shared": {"frames": [{"name": f} for f in index]},
            "profiles": [{"type": "sampled", "name": name, "unit": unit, "startValue": 0,
                          "endValue": sum(weights), "samples": samples, "weights": weights}]}


def tree(folded: Counter[str] | Iterable[tuple[str, int]]) -> dict[str, Any]:
    """{"n": name, "v": value, "c": [children]} for the report's renderer, children by value."""
    root: dict[str, Any] = {"n": "all", "v": 0, "c": {}}
    for stack, n in (folded.items() if isinstance(folded, Counter) else folded):
        node = root
        node["v"] += n
        for f in stack.split(";"):
            node = node["c"].setdefault(f, {"n": f, "v": 0, "c": {}})
            node["v"] += n
    return _lists(root)


def _lists(node: dict[str, Any]) -> dict[str, Any]:
    children = sorted(node["c"].values(), key=lambda c: (-c["v"], c["n"]))
    return {"n": node["n"], "v": node["v"], "c": [_lists(c) for c in children]}


def diff(a: Counter[str], b: Counter[str]) -> list[tuple[str, int, int]]:
    """(stack, value in A, value in B) for every stack of either, as difffolded.pl writes them. Values
    are normalised to shares (parts per million of each run's total) so that a longer run does not look
    different everywhere."""
    total_a, total_b = sum(a.values()) or 1, sum(b.values()) or 1
    return [(s, round(a[s] * 1e6 / total_a), round(b[s] * 1e6 / total_b)) for s in sorted(set(a) | set(b))]


def diff_tree(rows: list[tuple[str, int, int]]) -> dict[str, Any]:
    """Like tree(), with each node's A and B values; a frame is as wide as A + B, coloured by B - A."""
    root: dict[str, Any] = {"n": "all", "a": 0, "b": 0, "c": {}}
    for stack, va, vb in rows:
        node = root
        node["a"] += va
        node["b"] += vb
        for f in stack.split(";"):
            node = node["c"].setdefault(f, {"n": f, "a": 0, "b": 0, "c": {}})
            node["a"] += va
            node["b"] += vb

    def lists(node: dict[str, Any]) -> dict[str, Any]:
        kids = sorted(node["c"].values(), key=lambda c: -(c["a"] + c["b"]))
        return {"n": node["n"], "a": node["a"], "b": node["b"], "v": node["a"] + node["b"],
                "c": [lists(k) for k in kids]}
    return lists(root)
