"""`lmp doctor`: what this host's kernel lets LMP do, in plain words, and what to do about what it does not.

Each check looks at the running system itself (files the kernel exposes, and small programs it is asked
to load), not only at the kernel's build config, which can say yes where a running system says no (fentry
refused by a security policy, say). Then every collector and functional component: can it run here."""
from __future__ import annotations

import json
import os
import platform
import sys

from exporters._lib import catalog
from exporters._lib.bpf import can_run

from .checks import Check, all_checks


def components() -> list[dict]:
    rows = []
    for name in catalog.names():
        spec = catalog.load(name)
        ok, why = can_run(spec)
        hooks = spec.hooks  # tracepoints, and a function component's XDP or cgroup hooks
        rows.append({"name": name, "kind": spec.kind, "can_run": ok, "why_not": why, "hooks": list(hooks)})
    return rows


def report(checks: list[Check], rows: list[dict]) -> str:
    mark = {True: "yes", False: "NO", None: "?"}
    lines = [f"LMP doctor: {platform.node()}, kernel {platform.release()} ({platform.machine()})", "",
             f"{'CHECK':<22} {'OK':<4} FOUND"]
    for c in checks:
        lines.append(f"{c.name:<22} {mark[c.ok]:<4} {c.found}")
        if c.ok is not True and c.advice:
            lines.append(f"{'':<27}→ {c.advice}")
    lines += ["", f"{'COMPONENT':<12} {'KIND':<10} {'RUNS HERE':<10} WHY NOT"]
    for r in rows:
        lines.append(f"{r['name']:<12} {r['kind']:<10} {'yes' if r['can_run'] else 'no':<10} {r['why_not']}")
    ok = sum(r["can_run"] for r in rows)
    lines += ["", f"{ok} of {len(rows)} components can run here."]
    return "\n".join(lines)


def main(as_json: bool) -> int:
    if os.geteuid() != 0:
        print("lmp doctor: run as root (sudo lmp doctor): most checks load programs into the kernel",
              file=sys.stderr)
        return 2
    checks, rows = all_checks(), components()
    if as_json:
        print(json.dumps({"host": platform.node(), "kernel": platform.release(), "machine": platform.machine(),
                          "checks": [c.__dict__ for c in checks], "components": rows}, indent=2))
    else:
        print(report(checks, rows))
    return 0
