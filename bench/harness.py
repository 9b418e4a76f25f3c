"""The benchmark's moving parts: exporters and peer tools as processes, the floor program, timed loops."""
from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from exporters._lib.bpf import programs_held_by
from lmp.run import wait_until_serving

HERE = Path(__file__).resolve().parent
LOOPS = HERE / "loops"
LMP = [sys.executable, "-m", "lmp"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


class Exporter:
    """An exporter process; `seconds` is from spawn to its first /metrics answer."""

    def __init__(self, name: str, *options: str, config: Path | None = None) -> None:
        listen = f"127.0.0.1:{free_port()}"
        started = time.monotonic()
        top = ["--config", str(config)] if config else []
        self.proc = subprocess.Popen([*LMP, *top, "exporter", name, "--listen", listen, *options],
                                     stderr=subprocess.DEVNULL)
        if not wait_until_serving(self.proc, f"http://{listen}/metrics", started + 60):
            self.stop()
            raise SystemExit(f"bench: exporter {name} did not start (exit code {self.proc.returncode})")
        self.seconds = time.monotonic() - started
        self.programs = programs_held_by(self.proc.pid)

    def memory_mb(self) -> dict[str, float]:
        """MB of: private dirty memory (anonymous: what this process alone costs and the kernel cannot
        reclaim), PSS (its share of everything it maps) and RSS (all it maps, shared libraries too)."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, value = line.split(":")
            fields[key] = int(value.split()[0]) / 1024
        return {"private": fields["Private_Dirty"], "pss": fields["Pss"], "rss": fields["Rss"]}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def program_cost(self, binary: Path, n: int, cwd: Path | None = None) -> tuple[float, float]:
        """(program runs per operation, ns per run) of this exporter's programs over one loop run."""
        ids = programs_held_by(self.proc.pid)
        with BpfStats():
            runs0, ns0 = program_runs(ids)
            loop_ns(binary, n, 1, 0, cwd)
            runs1, ns1 = program_runs(ids)
        runs = runs1 - runs0
        return runs / n, (ns1 - ns0) / runs if runs else 0.0


class Peer:
    """A bcc tool doing the same job, attached until stopped; ready once it prints its first line."""

    def __init__(self, *command: str) -> None:
        self.proc = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        first = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not first and self.proc.poll() is not None:
            raise RuntimeError(f"{command[0]} exited with {self.proc.returncode}")
        time.sleep(0.5)

    def stop(self) -> None:
        self.proc.send_signal(2)
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


class EmptyProgram:
    """The floor: bench/empty.bpf.c attached to each of the given tracepoints and raw tracepoints."""

    def __init__(self, tracepoints: tuple[str, ...], raw_tracepoints: tuple[str, ...] = ()) -> None:
        from bcc import BPF
        self.bpf = BPF(src_file=str(HERE / "empty.bpf.c").encode())
        for tp in tracepoints:
            self.bpf.attach_tracepoint(tp=tp.encode(), fn_name=b"empty")
        for tp in raw_tracepoints:
            self.bpf.attach_raw_tracepoint(tp=tp.encode(), fn_name=b"empty_raw")

    def stop(self) -> None:
        self.bpf.cleanup()


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


def build(workdir: Path, name: str) -> Path:
    binary = workdir / name
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(LOOPS / f"{name}.c")], check=True)
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
