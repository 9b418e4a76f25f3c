"""Fixtures of the scenario tests: the program with known behaviour (known.c) built with frame pointers,
a loopback listener for it to connect to, and running `lmp scenario` as a user does."""
from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import LMP, ROOT, bpf_program_ids
from tests.conftest import programs_of as programs_held_by

HERE = Path(__file__).resolve().parent


def build(source: Path, out_dir: Path) -> Path:
    binary = out_dir / source.stem
    subprocess.run(["gcc", "-O2", "-fno-omit-frame-pointer", "-o", str(binary), str(source)], check=True)
    return binary


@pytest.fixture(scope="session")
def known() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="lmp-known-"))
    try:
        yield build(HERE / "known.c", folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def disk_folder() -> Iterator[Path]:
    """Like tests/conftest.py's disk_dir (on the repository's real disk, not a tmpfs), for a module."""
    folder = Path(tempfile.mkdtemp(dir=ROOT, prefix=".lmp-scenario-test-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def listener() -> Iterator[int]:
    """A TCP listener on loopback; its port. Connections complete in the kernel's backlog."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield s.getsockname()[1]


@dataclass
class Run:
    """One `lmp scenario` run's saved results, read back from its output directory."""
    out: Path
    proc: subprocess.CompletedProcess

    def json(self, name: str) -> dict:
        return json.loads((self.out / name).read_text())

    @property
    def breakdown(self) -> dict:
        return self.json("breakdown.json")

    @property
    def events(self) -> list[dict]:
        return self.json("events.json")["events"]

    def syscall(self, name: str) -> dict:
        return next((s for s in self.breakdown["syscalls"] if s["name"] == name), {"count": 0, "errors": 0})

    def folded(self, name: str) -> dict[str, int]:
        lines = (self.out / f"{name}.folded").read_text().splitlines()
        return {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in lines}


class Background:
    """`lmp scenario ...` as a process; once it says it is following, the BPF programs it holds are noted,
    and they must be gone after it ends."""

    def __init__(self, out: Path, *args: str, must_start: bool = True, cpus: set[int] | None = None) -> None:
        self.out = out
        pin = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
        self.proc = subprocess.Popen([*pin, *LMP, "scenario", *args[:1], "-o", str(out), *args[1:]],
                                     stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.first = self.proc.stderr.readline()  # type: ignore[union-attr]
        self.started = "following pid" in self.first
        self.programs = programs_held_by(self.proc.pid) if self.started else set()
        if must_start and not self.started:
            self.proc.kill()
            raise AssertionError(f"lmp scenario did not start: {self.first}{self.proc.stderr.read()}")  # type: ignore[union-attr]

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout: float = 120) -> Run:
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for _ in range(40):  # the kernel frees a program a moment after its last holder exits
            left = self.programs & bpf_program_ids()
            if not left:
                break
            time.sleep(0.05)
        assert not left, f"BPF programs {left} still loaded after lmp scenario ended"
        return Run(self.out, subprocess.CompletedProcess(self.proc.args, self.proc.returncode, stdout,
                                                         self.first + stderr))


def scenario(out: Path, *args: str, timeout: float = 120, cpus: set[int] | None = None) -> Run:
    """`lmp scenario ARGS -o OUT` to its end, on the given CPUs if any."""
    return Background(out, *args, must_start=False, cpus=cpus).wait(timeout)
