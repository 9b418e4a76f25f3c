"""The benchmark's moving parts: exporters and peer tools as processes, the floor program, timed loops."""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from exporters._lib import libbpf, paths
from exporters._lib.bpf import programs_held_by
from exporters._lib.serving import wait_until_serving
from testkit import free_port

HERE = Path(__file__).resolve().parent
LOOPS = HERE / "loops"
LMP = [sys.executable, "-m", "lmp"]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


class Exporter:
    """An exporter process; `seconds` is from spawn to its first /metrics answer."""

    def __init__(self, name: str, *options: str, config: Path | None = None) -> None:
        self.listen = listen = f"127.0.0.1:{free_port()}"
        started = time.monotonic()
        top = ["--config", str(config)] if config else []
        self.proc = subprocess.Popen([*LMP, *top, "exporter", name, "--listen", listen, *options],
                                     stderr=subprocess.DEVNULL)
        if not wait_until_serving(f"http://{listen}/metrics", started + 60, lambda: self.proc.poll() is None):
            self.stop()
            raise SystemExit(f"bench: exporter {name} did not start (exit code {self.proc.returncode})")
        self.seconds = time.monotonic() - started
        self.programs = programs_held_by(self.proc.pid)

    def memory_mb(self) -> dict[str, float]:
        return memory_mb(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def program_cost(self, binary: Path, n: int, cwd: Path | None = None) -> tuple[float, float]:
        return program_cost(programs_held_by(self.proc.pid), binary, n, cwd)


def memory_mb(pid: int) -> dict[str, float]:
    """MB of: private memory (what this process alone costs: its private pages, dirty or clean), PSS (its
    share of everything it maps, shared pages divided among the processes that map them) and RSS (all it
    maps, shared libraries too)."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":")
        fields[key] = int(value.split()[0]) / 1024
    return {"private": fields["Private_Dirty"] + fields["Private_Clean"], "pss": fields["Pss"], "rss": fields["Rss"]}


def program_cost(ids: set[int], binary: Path, n: int, cwd: Path | None = None) -> tuple[float, float]:
    """(program runs per operation, ns per run) of the programs `ids` over one loop run, as the kernel
    counts them."""
    with BpfStats():
        runs0, ns0 = program_runs(ids)
        loop_ns(binary, n, 1, 0, cwd)
        runs1, ns1 = program_runs(ids)
    runs = runs1 - runs0
    return runs / n, (ns1 - ns0) / runs if runs else 0.0


PEERS = paths.PEERS_DIR


class Peer:
    """Another tool doing the same job (an ebpf_exporter, one of bcc's libbpf-tools), attached until
    stopped; ready once it holds its BPF programs (`ready`: a URL it then answers, for an exporter).
    `seconds` is from spawn to ready."""

    def __init__(self, *command: str, ready: str | None = None) -> None:
        started, self.url = time.monotonic(), ready
        self.proc = subprocess.Popen(list(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        alive = lambda: self.proc.poll() is None  # noqa: E731
        if ready is not None and not wait_until_serving(ready, started + 60, alive):
            self.stop()
            raise RuntimeError(f"{command[0]} did not answer {ready} (exit code {self.proc.returncode})")
        self.programs: set[int] = set()
        while alive() and time.monotonic() < started + 30:
            self.programs = programs_held_by(self.proc.pid)
            if self.programs:
                break
            time.sleep(0.01)
        if not self.programs:
            self.stop()
            raise RuntimeError(f"{command[0]} holds no BPF program (exit code {self.proc.returncode})")
        self.seconds = time.monotonic() - started
        time.sleep(0.3)  # every program attached, not only the first

    def memory_mb(self) -> dict[str, float]:
        return memory_mb(self.proc.pid)

    def program_cost(self, binary: Path, n: int, cwd: Path | None = None) -> tuple[float, float]:
        return program_cost(self.programs, binary, n, cwd)

    def stop(self) -> None:
        self.proc.send_signal(2)  # SIGINT: libbpf-tools print their summary and detach
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def ebpf_exporter(*configs: str) -> Peer:
    """Cloudflare's ebpf_exporter with the given example configs, on a free loopback port."""
    listen = f"127.0.0.1:{free_port()}"
    return Peer(str(PEERS / "ebpf_exporter" / "ebpf_exporter"), f"--config.dir={PEERS / 'ebpf_exporter' / 'examples'}",
                f"--config.names={','.join(configs)}", f"--web.listen-address={listen}",
                ready=f"http://{listen}/metrics")


def libbpf_tool(name: str, *args: str) -> Peer:
    return Peer(str(PEERS / "libbpf-tools" / name), *args)


def have_peer(path: str) -> bool:
    return (PEERS / path).is_file()


class EmptyProgram:
    """The floor: bench/hooks.bpf.o's empty program of one hook type ("tp", "raw_tp", "tp_btf") on each of
    the given tracepoints (category:event)."""

    def __init__(self, kind: str, tracepoints: tuple[str, ...]) -> None:
        self.objects: list[int] = []
        self.links: list[int] = []
        held = programs_held_by(os.getpid())
        try:
            for tp in tracepoints:
                obj = libbpf.open_file(HERE / "hooks.bpf.o")
                self.objects.append(obj)
                progs = {libbpf.name(p): p for p in libbpf.programs(obj)}
                for name, prog in progs.items():
                    libbpf.set_autoload(prog, name == f"empty_{kind}")
                prog = progs[f"empty_{kind}"]
                event = tp.split(":")[1]
                if kind == "tp_btf":
                    libbpf.set_attach_target(prog, event)
                libbpf.load(obj)
                self.links.append(libbpf.attach(prog) if kind == "tp_btf" else
                                  libbpf.attach_to(prog, tp if kind == "tp" else event))
            self.programs = programs_held_by(os.getpid()) - held
        except OSError:
            self.stop()
            raise

    def program_cost(self, binary: Path, n: int, cwd: Path | None = None) -> tuple[float, float]:
        return program_cost(self.programs, binary, n, cwd)

    def stop(self) -> None:
        for link in self.links:
            libbpf.destroy_link(link)
        for obj in self.objects:
            libbpf.close(obj)
        self.objects, self.links = [], []


class BpfStats:
    """While open, the kernel counts every BPF program's runs and run time (kernel.bpf_stats_enabled,
    off by default because it adds two clock reads per run). Restores the setting on exit."""

    SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")

    def __enter__(self) -> "BpfStats":
        self.old = self.SYSCTL.read_text().strip()
        self.SYSCTL.write_text("1")
        return self

    def __exit__(self, *exc: object) -> None:
        self.SYSCTL.write_text(self.old)


def program_runs(ids: set[int]) -> tuple[int, int]:
    """(runs, run time in ns) summed over the given programs, as the kernel counts them."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], check=True, capture_output=True, text=True).stdout
    progs = [p for p in json.loads(out or "[]") if p["id"] in ids]
    return sum(p.get("run_cnt", 0) for p in progs), sum(p.get("run_time_ns", 0) for p in progs)


def build(workdir: Path, source: Path) -> Path:
    """A loop program, compiled into workdir."""
    binary = workdir / source.stem
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def loop_ns(binary: Path, n: int, runs: int, cpu: int | None = None, cwd: Path | None = None) -> float:
    """Median over `runs` of the program's mean ns per operation (it prints that number)."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return statistics.median(float(subprocess.run([*pin, str(binary), str(n)], capture_output=True, text=True,
                                                  check=True, cwd=cwd).stdout) for _ in range(runs))


def added_cost(binary: Path, n: int, runs: int, start, cpu: int | None = 0,  # type: ignore[no-untyped-def]
               cwd: Path | None = None) -> tuple[float, float]:
    """(ns without, ns with) the probe `start()` attaches, measured back to back so that drift in this VM's
    speed between configurations does not count as overhead."""
    base = loop_ns(binary, n, runs, cpu, cwd)
    probe = start()
    try:
        return base, loop_ns(binary, n, runs, cpu, cwd)
    finally:
        probe.stop()


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
