"""`lmp scenario compare RUN_A RUN_B`: two runs side by side. Their breakdowns part by part, the event
counts that tell two kernel paths apart (block requests issued by the process itself, D-state waits,
faults), the syscalls of either, and a differential flame graph: every stack of either run with its
share of each run's on-CPU samples or off-CPU time (difffolded.pl's `stack A B`, which flamegraph.pl
draws coloured by the difference), plus the stacks whose share changed most."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import flame, report
from .breakdown import PARTS

COUNTS = (  # (label, path into the breakdown)
    ("block reads issued by it", ("block", "reads")), ("block writes issued by it", ("block", "writes")),
    ("block flushes issued by it", ("block", "flushes")), ("block bytes", ("block", "bytes")),
    ("off-CPU waits, uninterruptible", ("counts", "offcpu_intervals", "uninterruptible")),
    ("off-CPU waits, sleeping", ("counts", "offcpu_intervals", "sleeping")),
    ("page faults, user", ("faults", "user")), ("page faults, kernel", ("faults", "kernel")),
    ("TCP state changes", ("tcp", "state")), ("signals sent", ("signals", "generated")),
)


def load(folder: Path) -> dict[str, Any]:
    """A run's results; FileNotFoundError when the folder holds no complete run."""
    if not (folder / "run.json").is_file():
        raise FileNotFoundError(f"{folder} is not the output directory of an lmp scenario run (no run.json)")
    return {"dir": str(folder), "run": json.loads((folder / "run.json").read_text()),
            "breakdown": json.loads((folder / "breakdown.json").read_text()),
            "oncpu": flame.parse_folded((folder / "oncpu.folded").read_text()),
            "offcpu": flame.parse_folded((folder / "offcpu.folded").read_text())}


def _get(b: dict[str, Any], path: tuple[str, ...]) -> float:
    for key in path:
        b = b.get(key, {}) if isinstance(b, dict) else {}
    return b if isinstance(b, (int, float)) else 0


def _top_changes(rows: list[tuple[str, int, int]], n: int = 8) -> list[dict[str, Any]]:
    ranked = sorted(rows, key=lambda r: -abs(r[2] - r[1]))[:n]
    return [{"stack": s, "a_share": a / 1e6, "b_share": b / 1e6} for s, a, b in ranked]


def build(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    ba, bb = a["breakdown"], b["breakdown"]
    syscalls = sorted({s["name"] for s in ba["syscalls"] + bb["syscalls"]})
    by_name = lambda bd, n: next((s for s in bd["syscalls"] if s["name"] == n), {"count": 0, "seconds": 0.0})  # noqa: E731
    diffs = {kind: flame.diff(a[kind], b[kind]) for kind in ("oncpu", "offcpu")}
    return {
        "a": {"dir": a["dir"], "command": a["run"].get("command"), "wall_seconds": ba["wall_seconds"]},
        "b": {"dir": b["dir"], "command": b["run"].get("command"), "wall_seconds": bb["wall_seconds"]},
        "parts": {k: {"a": ba["parts"][k], "b": bb["parts"][k], "delta": bb["parts"][k] - ba["parts"][k]}
                  for k, _ in PARTS},
        "counts": {label: {"a": _get(ba, path), "b": _get(bb, path)} for label, path in COUNTS},
        "syscalls": [{"name": n, "a_count": by_name(ba, n)["count"], "b_count": by_name(bb, n)["count"],
                      "a_seconds": by_name(ba, n)["seconds"], "b_seconds": by_name(bb, n)["seconds"]}
                     for n in syscalls],
        "flame_changes": {kind: _top_changes(rows) for kind, rows in diffs.items()},
    }, diffs


SCHEDULER = {"schedule_[k]", "__schedule_[k]", "schedule_timeout_[k]", "io_schedule_[k]", "io_schedule_timeout_[k]",
             "__cond_resched_[k]", "preempt_schedule_common_[k]", "schedule_hrtimeout_range_[k]"}


def _tail(stack: str, n: int = 4) -> str:
    """A stack's innermost frames that say something: the scheduler's own frames end every off-CPU one."""
    frames = stack.split(";")
    while len(frames) > 1 and frames[-1] in SCHEDULER:
        frames.pop()
    return ";".join(frames[-n:])


def table(c: dict[str, Any]) -> str:
    name = lambda side: " ".join(c[side]["command"] or [c[side]["dir"]])  # noqa: E731
    lines = [f"A: {name('a')}  ({c['a']['dir']})", f"B: {name('b')}  ({c['b']['dir']})", "",
             f"{'':<42}{'A':>12}{'B':>12}{'B - A':>12}"]
    lines.append(f"{'wall-clock seconds':<42}{c['a']['wall_seconds']:>12.4f}{c['b']['wall_seconds']:>12.4f}"
                 f"{c['b']['wall_seconds'] - c['a']['wall_seconds']:>+12.4f}")
    for key, label in PARTS:
        p = c["parts"][key]
        lines.append(f"  {label:<40}{p['a']:>12.4f}{p['b']:>12.4f}{p['delta']:>+12.4f}")
    lines.append("")
    for label, v in c["counts"].items():
        lines.append(f"{label:<42}{v['a']:>12.0f}{v['b']:>12.0f}{v['b'] - v['a']:>+12.0f}")
    changed = [s for s in c["syscalls"] if s["a_count"] != s["b_count"]]
    if changed:
        lines += ["", f"{'syscalls whose count differs':<42}{'A':>12}{'B':>12}"]
        lines += [f"  {s['name']:<40}{s['a_count']:>12}{s['b_count']:>12}" for s in changed[:15]]
    for kind, title in (("offcpu", "off-CPU"), ("oncpu", "on-CPU")):
        if c["flame_changes"][kind]:
            lines += ["", f"{title} stacks whose share changed most (share of A, of B; innermost frames):"]
            for ch in c["flame_changes"][kind][:5]:
                tail = _tail(ch["stack"])
                lines.append(f"  {100 * ch['a_share']:6.1f}% {100 * ch['b_share']:6.1f}%  ...{tail}")
    return "\n".join(lines)


def compare(dir_a: Path, dir_b: Path, out: Path | None) -> str:
    a, b = load(dir_a), load(dir_b)
    result, diffs = build(a, b)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.json").write_text(json.dumps(result, indent=1) + "\n")
        for kind, rows in diffs.items():
            (out / f"{kind}.diff.folded").write_text("".join(f"{s} {x} {y}\n" for s, x, y in rows))
        side = lambda r, label: {"label": label, "meta": r["run"], "b": r["breakdown"]}  # noqa: E731
        report.write_compare(out / "compare.html", side(a, "A"), side(b, "B"),
                             {kind: flame.diff_tree(rows) for kind, rows in diffs.items()})
    return table(result)
