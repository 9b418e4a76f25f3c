"""`lmp bench`'s footprint and start-up: the whole default stack as `make run` starts it (its launcher,
spawner, admin and exporters; Prometheus aside), per process and summed; how soon each exporter answers;
and the same for ebpf_exporter and for LMP doing ebpf_exporter's four jobs, side by side.

Memory is read from /proc/PID/smaps_rollup once everything has answered a scrape: PSS (each process's
share of what it maps, shared pages divided among the processes mapping them: the sum over processes
is what they hold together) and private (pages no other process maps)."""
from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from exporters._lib import paths
from exporters._lib.serving import answers
from testkit import free_port

from .harness import LMP, get, memory_mb

ROOT = paths.ROOT
PEER_JOBS = {"syscalls": "syscalls", "biolatency": "biolatency", "skbdrop": "kfree_skb", "softirq": "softirq-latency"}


@dataclass
class Stack:
    """One `lmp run`, measured: processes by name -> memory; seconds from its start to each answer."""
    memory: dict[str, dict[str, float]] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)  # name -> seconds after `lmp run` started
    from_fork: dict[str, float] = field(default_factory=dict)  # exporter -> seconds after its fork


def config(collectors: list[str], admin: bool, tmp: Path) -> tuple[Path, dict[str, int]]:
    """A config with these collectors enabled (the rest off), each on a free port; no Prometheus."""
    from ruamel.yaml import YAML

    yaml = YAML()
    doc = yaml.load(paths.DEFAULT_CONFIG.read_text())
    ports = {name: free_port() for name in doc["collectors"]}
    for name, entry in doc["collectors"].items():
        entry["enabled"] = name in collectors
        entry["listen"] = f"127.0.0.1:{ports[name]}"
    ports["admin"] = free_port()
    doc["admin"].update({"enabled": admin, "listen": f"127.0.0.1:{ports['admin']}", "data_dir": str(tmp / "data"),
                         "run_dir": str(tmp / "run")})
    doc["prometheus"]["enabled"] = False
    doc["prometheus"]["rule_files"] = []
    path = tmp / "lmp.yaml"
    with open(path, "w") as f:
        yaml.dump(doc, f)
    return path, ports


def descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += descendants(int(child))
    return found


def measure_run(collectors: list[str], admin: bool) -> Stack:
    """`lmp run` with these collectors: when each answers, then every process's memory."""
    with tempfile.TemporaryDirectory(prefix="lmp-bench-") as tmp:
        path, ports = config(collectors, admin, Path(tmp))
        started = time.monotonic()
        proc = subprocess.Popen([*LMP, "--config", str(path), "run"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=ROOT)
        stack, answered_at = Stack(), {}
        wanted = {name: f"http://127.0.0.1:{ports[name]}/metrics" for name in collectors}
        if admin:
            wanted["admin"] = f"http://127.0.0.1:{ports['admin']}/api/v1/health"
        try:
            while wanted and time.monotonic() < started + 60 and proc.poll() is None:
                for name, url in list(wanted.items()):
                    if answers(url, timeout=0.5):
                        stack.answered[name], answered_at[name] = time.monotonic() - started, time.time()
                        del wanted[name]
                time.sleep(0.005)
            if wanted:
                raise SystemExit(f"bench: {', '.join(wanted)} did not answer under lmp run")
            state = json.loads((Path(tmp) / "run" / "state.json").read_text())["children"]
            for name in collectors:  # from its fork, when the supervisor asked the spawner for it
                stack.from_fork[name] = answered_at[name] - state[name]["started_at"]
            for name in collectors:
                get(f"http://127.0.0.1:{ports[name]}/metrics")  # every exporter has served a scrape
            time.sleep(1.0)
            for pid in descendants(proc.pid):
                stack.memory[Path(f"/proc/{pid}/comm").read_text().strip()] = memory_mb(pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return stack


def medians(stacks: list[Stack]) -> Stack:
    keys = stacks[0].memory
    return Stack({name: {k: statistics.median(s.memory[name][k] for s in stacks) for k in keys[name]}
                  for name in keys},
                 {n: statistics.median(s.answered[n] for s in stacks) for n in stacks[0].answered},
                 {n: statistics.median(s.from_fork[n] for s in stacks) for n in stacks[0].from_fork})


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """A median with its range: "12.3 (11.9-12.8)"."""
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def default_collectors() -> list[str]:
    from lmp import config as configs
    return [c.name for c in configs.load(paths.DEFAULT_CONFIG).collectors.values() if c.enabled]


def stack_rows(runs: int) -> tuple[list[list[str]], dict[str, float]]:
    """Per process of the default stack: PSS and private MB (median and range over runs), and the sums."""
    collectors = default_collectors()
    stacks = [measure_run(collectors, admin=True) for _ in range(runs)]
    rows, sums = [], {"pss": [0.0] * runs, "private": [0.0] * runs, "exporters_pss": [0.0] * runs,
                      "exporters_private": [0.0] * runs}
    for name in stacks[0].memory:
        pss = [s.memory[name]["pss"] for s in stacks]
        private = [s.memory[name]["private"] for s in stacks]
        rows.append([name, spread(pss), spread(private)])
        for i in range(runs):
            sums["pss"][i] += pss[i]
            sums["private"][i] += private[i]
            if name.removeprefix("lmp-") in collectors:
                sums["exporters_pss"][i] += pss[i]
                sums["exporters_private"][i] += private[i]
    rows.append([f"the {len(collectors)} exporters", spread(sums["exporters_pss"]), spread(sums["exporters_private"])])
    rows.append(["the whole stack", spread(sums["pss"]), spread(sums["private"])])
    answered = {n: [s.answered[n] for s in stacks] for n in stacks[0].answered}
    from_fork = {n: [s.from_fork[n] for s in stacks] for n in stacks[0].from_fork}
    totals = {"exporters_pss": statistics.median(sums["exporters_pss"]), "pss": statistics.median(sums["pss"]),
              "all_answered": statistics.median(max(s.answered[n] for n in collectors) for s in stacks),
              "slowest_from_fork": statistics.median(max(s.from_fork.values()) for s in stacks)}
    return rows, {**totals, "answered": answered, "from_fork": from_fork}  # type: ignore[dict-item]
