"""The timeline: every decoded event, streamed into LMP's event log (events.json) and into a Chrome
trace-event file (timeline.json) that Perfetto UI (ui.perfetto.dev, "Open trace file") and
chrome://tracing open. Both are written as the spool is read, one event at a time, so that a run of
millions of events needs no more memory than a short one.

In the trace each process is a Perfetto process and each thread a track: syscalls, user function
calls (uprobes) and off-CPU intervals are slices on the thread's track (they nest: a sleep inside its
nanosleep, the run-queue wait at the end of an off-CPU interval); faults, samples, signals, TCP
changes, exec, fork and exit are instants on it; block requests and application requests (HTTP, DNS,
Redis, PostgreSQL) are async slices of the process: a server's requests on many connections overlap
without nesting."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from .requests import title

US = 1e-3  # the trace format's unit is the microsecond
# One encoder for every event: compact, and no check for cycles (events are flat dicts). About twice as
# fast as json.dumps with its defaults, which matters at a million events.
ENCODE = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def _us(ns: int) -> float:
    return round(ns * US, 3)


def trace_events(e: dict[str, Any], stack: Any) -> list[dict[str, Any]]:
    """One event as trace events; `stack(kind, e)` names its frames."""
    pid, tid, kind = e["tgid"], e["tid"], e["kind"]
    base = {"pid": pid, "tid": tid, "cat": kind}
    if kind == "syscall":
        args = {"ret": e["ret"], "errno": e["errno"], "args": [hex(a) for a in e["args"]]}
        if "path" in e:
            args["path"] = e["path"]
        return [{**base, "ph": "X", "name": e["name"], "ts": _us(e["start"]), "dur": _us(e["dur"]), "args": args}]
    if kind == "uprobe":
        return [{**base, "ph": "X", "name": f"{e['probe']}()", "ts": _us(e["start"]), "dur": _us(e["dur"]),
                 "args": {"arg0": e["arg0"], "ret": e["ret"]}}]
    if kind == "offcpu":
        out = [{**base, "ph": "X", "name": f"off CPU: {e['reason']}", "ts": _us(e["start"]), "dur": _us(e["dur"]),
                "args": {"reason": e["reason"], "waker": e["waker"], "stack": stack("offcpu", e)}}]
        if e["woken"] is not None:
            out.append({**base, "ph": "X", "name": "run queue", "ts": _us(e["woken"]), "dur": _us(e["t"] - e["woken"]),
                        "args": {"woken by": e["waker"]}})
        return out
    if kind == "block":
        name = f"{e['op']} {e['bytes'] // 1024} KiB {e['disk']}"
        ident = f"{e['disk']}:{e['sector']}:{e['start']}"
        args = {"sector": e["sector"], "bytes": e["bytes"], "error": e["error"], "thread": tid,
                "queued_us": _us((e["issue"] or e["start"]) - e["start"])}
        return [{**base, "ph": "b", "name": name, "id": ident, "ts": _us(e["start"]), "args": args},
                {**base, "ph": "e", "name": name, "id": ident, "ts": _us(e["t"])}]
    if kind == "request":
        ident = f"request:{tid}:{e['fd']}:{e['start']}"
        skip = {"kind", "t", "tid", "tgid", "cpu", "start", "dur"}
        args = {"thread": tid, **{k: v for k, v in e.items() if k not in skip}}
        return [{**base, "ph": "b", "name": title(e), "id": ident, "ts": _us(e["start"]), "args": args},
                {**base, "ph": "e", "name": title(e), "id": ident, "ts": _us(e["t"])}]
    return [{**base, "ph": "i", "s": "t", "name": instant_name(e), "ts": _us(e["t"]), "args": instant_args(e, stack)}]


def instant_name(e: dict[str, Any]) -> str:
    kind = e["kind"]
    if kind == "fault":
        return f"page fault ({e['mode']}, {e['access']})"
    if kind == "tcp":
        if e["what"] == "state":
            return f"tcp {e['old'].removeprefix('TCP_')} -> {e['new'].removeprefix('TCP_')}"
        return f"tcp {e['what'].replace('_', ' ')}"
    if kind == "signal":
        return f"{e['signal']} {'handled' if e['what'] == 'deliver' else 'sent'}"
    if kind == "exec":
        return f"exec {e['filename']}"
    if kind == "fork":
        return f"{'thread' if e['thread'] else 'fork'} {e['child_tid']}"
    if kind == "exit":
        return "exit " + (f"code {e['code']}" if "code" in e else e.get("signal", ""))
    return f"cpu sample ({e.get('mode', '')})"


def instant_args(e: dict[str, Any], stack: Any) -> dict[str, Any]:
    skip = {"kind", "t", "tid", "tgid", "cpu", "kstack", "ustack"}
    args = {k: v for k, v in e.items() if k not in skip}
    for k in ("address", "ip"):
        if k in args:
            args[k] = hex(args[k])
    if e["kind"] == "sample":
        args["stack"] = stack("sample", e)
    return args


class Streams:
    """events.json and timeline.json, written one event at a time."""

    def __init__(self, out: Path, meta: dict[str, Any]) -> None:
        self.log: TextIO = open(out / "events.json", "w")
        self.trace: TextIO = open(out / "timeline.json", "w")
        self.log.write('{"meta": ' + json.dumps(meta) + ',\n"events": [\n')
        self.trace.write('{"displayTimeUnit": "ns", "otherData": ' + json.dumps(meta) + ',\n"traceEvents": [\n')
        self.first_log = self.first_trace = True

    def _trace(self, event: dict[str, Any]) -> None:
        self.trace.write(("" if self.first_trace else ",\n") + ENCODE(event))
        self.first_trace = False

    def add(self, e: dict[str, Any], stack: Any) -> None:
        self.log.write(("" if self.first_log else ",\n") + ENCODE(e))
        self.first_log = False
        for t in trace_events(e, stack):
            self._trace(t)

    def close(self, stacks: dict[str, Any], names: dict[int, str], threads: dict[int, int]) -> None:
        """End both files; process and thread names (metadata events may come last) and the stack table."""
        for pid, name in names.items():
            self._trace({"ph": "M", "name": "process_name", "pid": pid, "tid": pid, "args": {"name": f"{name} {pid}"}})
        for tid, pid in threads.items():
            self._trace({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                         "args": {"name": f"{names.get(pid, pid)} {tid}"}})
        self.log.write('\n],\n"stacks": ' + json.dumps(stacks) + "}\n")
        self.trace.write("\n]}\n")
        self.log.close()
        self.trace.close()
