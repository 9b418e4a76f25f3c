"""The self-contained HTML report: scenario/report/report.html with its style, its script (report.js, a
small renderer of our own: flame graph, timeline, tables) and the run's data inlined, so that the file
opens from disk, or from an e-mail, with no network."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .requests import title
from .timeline import instant_name

HERE = Path(__file__).resolve().parent / "report"
SLICES = {"syscall", "uprobe", "offcpu", "block", "request"}


def page(title: str, data: dict[str, Any]) -> str:
    # "</" inside the JSON would end the <script> element early; "<\/" is the same string to JSON.
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    html = (HERE / "report.html").read_text()
    for marker, text in (("/*__LMP_CSS__*/", (HERE / "report.css").read_text()),
                         ("/*__LMP_JS__*/", (HERE / "report.js").read_text()),
                         ("/*__LMP_TITLE__*/", title.replace("&", "&amp;").replace("<", "&lt;")),
                         ("/*__LMP_DATA__*/", blob)):
        html = html.replace(marker, text, 1)
    return html


def _info(e: dict[str, Any]) -> str:
    kind = e["kind"]
    if kind == "syscall":
        text = f"= {e['ret']}" + (f" ({e['errno']})" if e["errno"] else "")
        return text + (f"\npath {e['path']}" if "path" in e else f"\nargs {', '.join(hex(a) for a in e['args'])}")
    if kind == "offcpu":
        return f"woken by {e['waker']}" if e["waker"] else "preempted"
    if kind == "block":
        return f"sector {e['sector']}, {e['bytes']} bytes, error {e['error']}"
    if kind == "uprobe":
        return f"arg0 {e['arg0']:#x}, returned {e['ret']}"
    if kind == "request":
        where = f"fd {e['fd']}, port {e['port']}"
        return where + (f", SQLSTATE class {e['sqlstate_class']}" if e.get("sqlstate_class") else "")
    return ", ".join(f"{k} {v}" for k, v in e.items() if k not in ("kind", "t", "tid", "tgid", "cpu", "kstack", "ustack"))


def timeline(events: list[dict[str, Any]], end: int, truncated: bool, names: dict[int, str]) -> dict[str, Any]:
    """The report's compact timeline: lanes, slices [tid, start, dur, name, cat, info], instants."""
    slices, instants, threads = [], [], {}
    for e in events:
        threads.setdefault(e["tid"], e["tgid"])
        kind = e["kind"]
        if kind in SLICES:
            name = title(e) if kind == "request" else {
                "syscall": e.get("name"), "uprobe": f"{e.get('probe')}()", "block": f"block {e.get('op')}",
                "offcpu": f"off CPU: {e.get('reason')}"}[kind]
            slices.append([e["tid"], e["start"], e["dur"], name, kind, _info(e)])
            if kind == "offcpu" and e["woken"] is not None:
                slices.append([e["tid"], e["woken"], e["t"] - e["woken"], "run queue", "runqueue", _info(e)])
        else:
            instants.append([e["tid"], e["t"], instant_name(e), kind, _info(e)])
    lanes = [[tid, pid, names.get(pid, str(pid))] for tid, pid in sorted(threads.items(), key=lambda kv: (kv[1], kv[0]))]
    return {"threads": lanes, "slices": slices, "instants": instants, "end": end, "truncated": truncated}


def write(path: Path, title: str, meta: dict[str, Any], breakdown: dict[str, Any], oncpu: dict[str, Any],
          offcpu: dict[str, Any], events: list[dict[str, Any]], truncated: bool, names: dict[int, str]) -> None:
    data = {"kind": "run", "title": title, "meta": meta, "breakdown": breakdown,
            "flames": {"oncpu": oncpu, "offcpu": offcpu},
            "timeline": timeline(events, int(breakdown["wall_seconds"] * 1e9), truncated, names)}
    path.write_text(page(title, data))


def write_compare(path: Path, a: dict[str, Any], b: dict[str, Any], diffs: dict[str, Any]) -> None:
    """a and b: {"label", "meta", "b" (breakdown), "summary"}; diffs: the differential flame trees."""
    path.write_text(page(f"{a['label']} vs {b['label']}", {"kind": "compare", "a": a, "b": b, "diff": diffs}))
