"""What `lmp bench` last measured of each collector, kept in one machine-readable file (docs/performance.json).
The README's table, the admin's catalog, the metric reference, each collector's README and
docs/performance.md render it, so that no number is copied by hand."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import paths


def load(path: Path = paths.BENCH_RESULTS) -> dict[str, Any]:
    """The results, or {} before any bench run."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def save(update: dict[str, Any], path: Path = paths.BENCH_RESULTS) -> None:
    """Merge a bench run's results into the file: its kernel-time rows replace those of the same label."""
    results = load(path)
    rows = {row["label"]: row for row in results.get("kernel_time", [])}
    rows.update({row["label"]: row for row in update.pop("kernel_time", [])})
    results.update(update)
    results["kernel_time"] = sorted(rows.values(), key=lambda r: r["label"])
    path.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")


def duration(ns: float) -> str:
    return f"{ns:.0f} ns" if ns < 1000 else f"{ns / 1000:.2g} µs"


def kernel_time(name: str, results: dict[str, Any]) -> list[dict[str, Any]]:
    """The collector's rows: kernel time per operation of its bench loops, with and without options."""
    return [row for row in results.get("kernel_time", []) if row["collector"] == name]


def overhead(name: str, results: dict[str, Any] | None = None) -> str:
    """What it costs, in words: '51 ns of kernel time per getpid syscall; 251 ns per ... with latency=true;
    about 7 MB of memory under lmp run'."""
    results = load() if results is None else results
    words = []
    for i, row in enumerate(kernel_time(name, results)):
        options = ", ".join(f"{k}={str(v).lower()}" for k, v in row.get("options", {}).items())
        words.append(f"{duration(row['lmp_ns']['median'])}{' of kernel time' if i == 0 else ''} per {row['operation']}"
                     + (f", with {options}" if options else ""))
    if (memory := results.get("exporter_pss_mb")) is not None:
        words.append(f"about {memory:.0f} MB of memory under lmp run")
    return "; ".join(words) or "not measured yet (lmp bench)"


def measured_paragraph(name: str, results: dict[str, Any]) -> str:
    """The first paragraph of a collector README's Overhead section."""
    rows = kernel_time(name, results)
    if not rows:
        return ("`lmp bench` has no loop for it (no `bench:` in its spec): its programs run on events too rare to "
                "cost anything measurable.")
    where = results.get("machine", "the reference VM")
    sentences = []
    for row in rows:
        ns = row["lmp_ns"]
        spread = f"median of {ns['runs']} runs, {ns['min']:.0f}-{ns['max']:.0f} ns" if "min" in ns else "median"
        options = ", ".join(f"`{k}={str(v).lower()}`" for k, v in row.get("options", {}).items())
        text = (f"per {row['operation']}{f' (with {options})' if options else ''}, the collector's programs take "
                f"about {ns['median']:.0f} ns of kernel time (the kernel's own count, `kernel.bpf_stats_enabled`; "
                f"{spread})")
        peers = [f"ebpf_exporter's programs take {peer['median']:.0f} ns" if who == "ebpf_exporter" else
                 f"{who}' `{peer['command']}` {peer['median']:.0f} ns" for who, peer in row.get("peers", {}).items()]
        if peers:
            text += "; for the same job " + " and ".join(peers)
        sentences.append(text)
    return (f"Measured with `lmp bench` on {where}; table in [docs/performance.md](../../docs/performance.md): "
            + ". And ".join(sentences) + ".")


def events_table(results: dict[str, Any]) -> str:
    """docs/performance.md's table of kernel time per event, LMP beside its peers."""
    def cell(ns: dict[str, Any] | None) -> str:
        if not ns:
            return "-"
        return f"{ns['median']:.0f}" + (f" ({ns['min']:.0f}-{ns['max']:.0f})" if "min" in ns else "")
    lines = ["| collector | operation | LMP ns | ebpf_exporter ns | libbpf-tools ns | at or below the best peer |",
             "|---|---|---|---|---|---|"]
    for row in results.get("kernel_time", []):
        peers = row.get("peers", {})
        tool = peers.get("libbpf-tools")
        best = min((p["median"] for p in peers.values()), default=None)
        verdict = "no peer" if best is None else "met" if row["lmp_ns"]["median"] <= best else "not met"
        lines.append(f"| {row['label']} | {row['operation']} | {cell(row['lmp_ns'])} | {cell(peers.get('ebpf_exporter'))} "
                     f"| {tool['command'] + ': ' + cell(tool) if tool else '-'} | {verdict} |")
    return "\n".join(lines)
