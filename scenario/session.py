"""One scenario from start to results: `run` starts a command held before its exec, `attach` follows a
running process; both record until the target is done, --duration passes or Ctrl-C, then write every
result (scenario/results.py)."""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .harvest import harvest
from .loader import FAMILIES, Program, Uprobe
from .record import Recorder, Recording
from .target import Launched, tgid_of, threads_of

PAGE = 4096


@dataclass
class Options:
    out: Path
    families: tuple[str, ...] = tuple(FAMILIES)
    children: bool = False
    uprobes: tuple[Uprobe, ...] = ()
    duration: float | None = None  # seconds; for `run` a cap, for `attach` the length
    frequency: int = 99
    buffer_mb: float = 8
    max_events: int = 1_000_000
    announce: bool = True  # say on stderr when following has begun

    def program(self, root_pid: int) -> Program:
        pages = max(1, int(self.buffer_mb * (1 << 20) // PAGE))
        pages = 1 << (pages.bit_length() - 1)  # the ring buffer's size is a power of two pages
        return Program(self.families, self.children, self.uprobes, self.frequency, pages, root_pid)


@dataclass
class Outcome:
    recording: Recording
    info: dict[str, Any] = field(default_factory=dict)


def _record(opts: Options, program: Program, first: list[tuple[int, int, int]], release, done,  # type: ignore[no-untyped-def]
            stop: threading.Event) -> tuple[Recording, str]:
    opts.out.mkdir(parents=True, exist_ok=True)
    rec = Recorder(program, opts.out / "events.spool", opts.max_events)
    try:
        rec.start(first)
        if opts.announce:
            print(f"lmp scenario: following pid {first[0][1]} ({len(first)} thread{'s' if len(first) > 1 else ''}); "
                  f"Ctrl-C ends the recording", file=sys.stderr, flush=True)
        if stop.is_set():  # Ctrl-C while the kernel code compiled: never start the command
            raise KeyboardInterrupt
        if release is not None:
            release()
        deadline = time.monotonic() + opts.duration if opts.duration else None
        rec.run(done, deadline, stop)
        ended = "exit" if done() else "interrupt" if stop.is_set() else "duration"
        if ended == "exit":
            rec.drain_exits()
        return harvest(rec), ended
    except BaseException:
        rec.close()
        if program.bpf is not None:
            program.close()
        rec.spool_path.unlink(missing_ok=True)
        if not any(opts.out.iterdir()):  # made for this run: leave nothing behind
            opts.out.rmdir()
        raise


def run_command(argv: list[str], opts: Options, stop: threading.Event) -> Outcome:
    """Start argv held before its exec, follow it (and its threads, and with --children its child
    processes) from its first instruction to its exit."""
    child = Launched(argv)  # TargetError when the command does not exist: before anything is loaded
    program = opts.program(child.pid)
    try:
        if stop.is_set():
            raise KeyboardInterrupt
        recording, ended = _record(
            opts, program, [(child.pid, child.pid, 1)], child.release,
            lambda: child.poll() and (not opts.children or not _live(program)), stop)
    except BaseException:
        if child.status is None:
            child.cancel()
        raise
    child.stop()  # still running after Ctrl-C or --duration: the recording is over, so is the command
    info = {"mode": "run", "command": argv, "executable": child.path, "pid": child.pid,
            "exit_code": child.exit_code, "ended_by": ended}
    return Outcome(recording, info)


def _live(program: Program) -> int:
    return len(program.bpf["threads"]) if program.bpf is not None else 0


def attach(pid: int, opts: Options, stop: threading.Event) -> Outcome:
    """Follow a running process (every thread, new ones too) for opts.duration seconds or until it exits."""
    tgid = tgid_of(pid)
    program = opts.program(tgid)
    first = [(tid, tgid, hint) for tid, hint in threads_of(tgid)]
    recording, ended = _record(opts, program, first, None, lambda: not _live(program), stop)
    info = {"mode": "attach", "pid": tgid, "command": _cmdline(tgid), "exit_code": None, "ended_by": ended}
    return Outcome(recording, info)


def _cmdline(pid: int) -> list[str]:
    try:
        return [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        return []
