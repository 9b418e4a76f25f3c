"""Writing a scenario's results into its output directory:

  run.json                 what was run, how it ended, the options, lost events, the files below
  breakdown.json           where the time went (breakdown.py), also printed as a table
  events.json              LMP's event log: every event, and the stacks they refer to
  timeline.json            the same as Chrome trace events, for Perfetto UI
  oncpu.folded, offcpu.folded                  flame graphs as flamegraph.pl's folded stacks
  oncpu.speedscope.json, offcpu.speedscope.json  the same for speedscope
  report.html              breakdown, flame graphs and timeline in one page that needs no network"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from . import breakdown as breakdowns
from . import flame, report
from .events import decode, records
from .session import Options, Outcome
from .symbols import Symbolizer
from .timeline import Streams

ARTIFACTS = ("run.json", "breakdown.json", "events.json", "timeline.json", "oncpu.folded", "offcpu.folded",
             "oncpu.speedscope.json", "offcpu.speedscope.json", "report.html")
REPORT_EVENTS = 40_000  # events the HTML report's timeline carries; the files have them all


class Stacks:
    """Stack ids as events refer to them -> frame names, collected for the event log's stack table."""

    def __init__(self, outcome: Outcome, sym: Symbolizer) -> None:
        self.rec, self.sym = outcome.recording, sym
        self.table: dict[str, dict[str, list[str]]] = {"user": {}, "kernel": {}}

    def __call__(self, _kind: str, e: dict[str, Any]) -> list[str]:
        tgid = e["tgid"]
        if e["ustack"] >= 0:
            self.table["user"].setdefault(f"{tgid}:{e['ustack']}", flame.frames(self.sym, self.rec, tgid, -1, e["ustack"]))
        if e["kstack"] >= 0:
            self.table["kernel"].setdefault(str(e["kstack"]), flame.frames(self.sym, self.rec, tgid, e["kstack"], -1))
        return flame.frames(self.sym, self.rec, tgid, e["kstack"], e["ustack"])


def write(outcome: Outcome, opts: Options) -> dict[str, Any]:
    """Every result file; returns the breakdown."""
    rec, out = outcome.recording, opts.out
    probes = [str(p) for p in opts.uprobes]
    sym = Symbolizer(rec.maps)
    names = {tgid: rec.maps.comms.get(tgid, str(tgid)) for tgid in rec.tgids | set(rec.maps.comms)}
    summary = breakdowns.build(rec, probes)
    meta = {**outcome.info, "t0_realtime_ns": rec.t0 + rec.realtime_offset, "families": list(opts.families),
            "children": opts.children, "uprobes": probes, "frequency_hz": opts.frequency,
            "buffer_mb": opts.buffer_mb, "time_unit": "ns since t0"}
    stacks = Stacks(outcome, sym)
    streams = Streams(out, meta)
    threads: dict[int, int] = {}
    kept: list[dict[str, Any]] = []
    for raw in records(rec.spool):
        e = decode(raw, rec.t0, probes)
        names.setdefault(e["tgid"], str(e["tgid"]))
        threads.setdefault(e["tid"], e["tgid"])
        if e["kind"] == "exec":
            names[e["tgid"]] = Path(e["filename"]).name
        elif e["kind"] == "fork" and not e["thread"]:  # a child runs its parent's program until it execs
            names.setdefault(e["child_tgid"], names[e["tgid"]])
        streams.add(e, stacks)
        if len(kept) < REPORT_EVENTS:
            kept.append(e)
    streams.close(stacks.table, names, threads)
    os.unlink(rec.spool)

    on, off = flame.oncpu(rec, sym, names), flame.offcpu(rec, sym, names)
    (out / "oncpu.folded").write_text(flame.folded_text(on))
    (out / "offcpu.folded").write_text(flame.folded_text(off))
    _json(out / "oncpu.speedscope.json", flame.speedscope(on, "on-CPU samples", "none"))
    _json(out / "offcpu.speedscope.json", flame.speedscope(off, "off-CPU time", "nanoseconds"))
    _json(out / "breakdown.json", summary)
    title = " ".join(outcome.info.get("command") or [f"pid {outcome.info.get('pid')}"])
    report.write(out / "report.html", title, meta, summary, flame.tree(on), flame.tree(off), kept, len(kept) < rec.kept,
                 names)
    _json(out / "run.json", {**meta, "status": "complete", "wall_seconds": summary["wall_seconds"],
                             "events_kept": rec.kept, "events_lost": sum(rec.lost.values()),
                             "artifacts": list(ARTIFACTS)})
    return summary


def _json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n")
