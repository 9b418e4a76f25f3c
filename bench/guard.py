"""`lmp bench` for the function components: what netguard adds per packet (its pass and drop paths, against
no program and an empty XDP program) and what connguard adds per connect().

netguard: a C loop in one network namespace sends UDP datagrams over a veth pair into another, where the
guarded end runs XDP in generic mode; each send carries its datagram through the XDP program and the
receiving stack, so the loop's time per datagram includes both. connguard: the tcp loop (loopback connect,
accept, close) and a loop of refused connects, run inside a cgroup the bench makes. Each configuration is
timed back to back with its own baseline (no program), and the kernel counts its programs' runs and run
time (kernel.bpf_stats_enabled)."""
from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from exporters._lib import libbpf
from exporters._lib.function import links, netns
from testkit import VethPair, made_cgroup, made_veth_pair

from .harness import HERE, LOOPS, BpfStats, Exporter, build, program_runs

GUARDED, (SOURCE, BLOCKED) = VethPair.GUARDED_V4, VethPair.PEER_V4  # the pair's addresses
UNRELATED = [f"198.{i // 256}.{i % 256}.0/24" for i in range(1000)]  # blocklist rules the traffic never matches


def timed(command: list[str], runs: int) -> float:
    """Median over `runs` of what the loop prints (mean ns per operation)."""
    return statistics.median(float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
                             for _ in range(runs))


class Floor:
    """bench/hooks.bpf.o's empty_xdp or empty_connect alone, attached through a link."""

    def __init__(self, function: str, hook: str, target: str) -> None:
        self.obj = libbpf.open_file(HERE / "hooks.bpf.o")
        progs = {libbpf.name(p): p for p in libbpf.programs(self.obj)}
        for name, prog in progs.items():
            libbpf.set_autoload(prog, name == function)
        libbpf.load(self.obj)
        self.fd = libbpf.program_fd(progs[function])
        self.link = links.attach(hook, self.fd, target, links.XDP_FLAGS["generic"] if hook == "xdp" else 0)
        self.ids = {int(line.split()[1]) for line in Path(f"/proc/self/fdinfo/{self.fd}").read_text().splitlines()
                    if line.startswith("prog_id:")}

    def stop(self) -> None:
        self.link.close()
        libbpf.close(self.obj)


def component(tmp: Path, name: str, policy: dict) -> Exporter:
    config = tmp / f"{name}.yaml"
    config.write_text(json.dumps({"collectors": {name: {"enabled": False, "listen": "127.0.0.1:1", "policy": policy}}}))
    return Exporter(name, config=config)


def row(label: str, command: list[str], runs: int, start: Callable[[], object], ids: Callable[[object], set[int]],
        operations: int) -> list[str]:
    """[label, ns without, ns with, added, program runs per op, ns per run]."""
    base = timed(command, runs)
    probe = start()
    try:
        with_probe = timed(command, runs)
        with BpfStats():
            runs0, ns0 = program_runs(ids(probe))
            timed(command, 1)
            runs1, ns1 = program_runs(ids(probe))
    finally:
        probe.stop()  # type: ignore[attr-defined]
    per_run = (ns1 - ns0) / (runs1 - runs0) if runs1 > runs0 else 0.0
    return [label, f"{base:.0f}", f"{with_probe:.0f}", f"{with_probe - base:+.0f}",
            f"{(runs1 - runs0) / operations:.2f}", f"{per_run:.0f}"]


def netguard_costs(runs: int, datagrams: int = 200_000) -> list[list[str]]:
    tmp = Path(tempfile.mkdtemp(prefix="lmp-bench-"))
    try:
        binary = build(tmp, LOOPS / "udpflood.c")
        with made_veth_pair("lmp-bench") as pair:
            guarded, peer = pair.guarded, pair.peer
            with netns.entered(guarded):  # a socket nobody reads: the stack's delivery ends at its full buffer
                sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sink.bind((GUARDED, 0))
            interface = f"{guarded}/veth0"
            send = lambda source: ["ip", "netns", "exec", peer, "taskset", "-c", "0", str(binary),  # noqa: E731
                                   str(datagrams), source, GUARDED, str(sink.getsockname()[1])]
            policy = {"mode": "enforce", "interfaces": [interface], "blocklist": [*UNRELATED, BLOCKED],
                     "rate_limit": {"packets_per_second": 10**9}}
            held = lambda e: e.programs  # noqa: E731
            rows = [row("empty XDP program (the floor)", send(SOURCE), runs,
                        lambda: Floor("empty_xdp", "xdp", interface), lambda f: f.ids, datagrams),
                    row("netguard, pass path (1,001 blocklist rules, none matching; rate limit on)", send(SOURCE), runs,
                        lambda: component(tmp, "netguard", policy), held, datagrams),
                    row("netguard, drop path (the source is blocklisted)", send(BLOCKED), runs,
                        lambda: component(tmp, "netguard", policy), held, datagrams),
                    row("netguard, observe mode (would drop, passes)", send(BLOCKED), runs,
                        lambda: component(tmp, "netguard", {**policy, "mode": "observe"}), held, datagrams)]
            sink.close()
        return rows
    finally:
        shutil.rmtree(tmp)


def connguard_costs(runs: int, connections: int = 5000) -> list[list[str]]:
    tmp = Path(tempfile.mkdtemp(prefix="lmp-bench-"))
    try:
        tcp, refused = build(tmp, LOOPS / "tcp.c"), build(tmp, LOOPS / "connect.c")
        with made_cgroup("lmp-bench") as (group, path):
            inside = lambda *cmd: ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec taskset -c 0 "$@"',  # noqa: E731
                                   "sh", *cmd]
            port = 9  # discard: nothing listens, and connguard refuses it before that matters
            policy = {"mode": "enforce", "cgroups": [path], "destinations": [
                *({"cidr": cidr} for cidr in UNRELATED), {"cidr": "127.0.0.1", "ports": [port]}]}
            held = lambda e: e.programs  # noqa: E731
            return [row("empty connect4 program (the floor)", inside(str(tcp), str(connections)), runs,
                        lambda: Floor("empty_connect", "cgroup/connect4", path), lambda f: f.ids, connections),
                    row("connguard, allowed (1,001 destinations, none matching)", inside(str(tcp), str(connections)), runs,
                        lambda: component(tmp, "connguard", policy), held, connections),
                    refused_row(inside(str(refused), str(connections * 4), str(port)), runs,
                                lambda: component(tmp, "connguard", policy), connections * 4)]
    finally:
        shutil.rmtree(tmp)


def refused_row(command: list[str], runs: int, start: Callable[[], Exporter], operations: int) -> list[str]:
    """A refused connect has no baseline (without connguard it would be another operation)."""
    exporter = start()
    try:
        with_probe = timed(command, runs)
        with BpfStats():
            runs0, ns0 = program_runs(exporter.programs)
            timed(command, 1)
            runs1, ns1 = program_runs(exporter.programs)
    finally:
        exporter.stop()
    per_run = (ns1 - ns0) / (runs1 - runs0) if runs1 > runs0 else 0.0
    return ["connguard, refused (EPERM; each one reported)", "-", f"{with_probe:.0f}", "-",
            f"{(runs1 - runs0) / operations:.2f}", f"{per_run:.0f}"]


# The rows docs/performance.json keeps of the two tables: (label there, the row's label starts so, the operation).
RESULTS = [("netguard", "netguard, pass path", "packet passed (generic XDP, 1,001 blocklist rules, rate limit on)"),
           ("netguard (drop)", "netguard, drop path", "packet dropped (generic XDP)"),
           ("connguard", "connguard, allowed", "connect() allowed (1,001 destinations)"),
           ("connguard (refused)", "connguard, refused", "connect() refused and reported")]


def results(rows: list[list[str]]) -> list[dict]:
    """Kernel ns per operation (program runs per op x ns per run) of the components' rows."""
    found = []
    for label, starts, operation in RESULTS:
        row = next((r for r in rows if r[0].startswith(starts)), None)
        if row is not None and row[4] != "-" and row[5] != "-":
            found.append({"label": label, "collector": label.split()[0], "options": {}, "operation": operation,
                          "lmp_ns": {"median": round(float(row[4]) * float(row[5]))}, "peers": {}})
    return found
