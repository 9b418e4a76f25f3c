"""The recording loop: load the kernel code, follow the first threads, drain the ring buffer into a spool
file until the target is done, then read the exact totals and the stacks.

Events are not decoded while recording: the ring buffer callback only appends each raw record to the
spool (a length and the bytes), which keeps the reader fast enough for millions of events a second and
its memory flat; scenario/events.py decodes the spool afterwards. The only work done on the way is
noticing execs, forks and mmaps, after which the process's memory map is read again (symbols.py needs
it to name user stack frames, and it disappears with the process)."""
from __future__ import annotations

import ctypes
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .loader import Program
from .symbols import Maps
from .target import alive

POLL_SECONDS = 0.02  # how often the ring buffer is drained: 8 MB fill in ~50 ms at 2M syscalls/s
SNAPSHOT_SECONDS = 0.1  # how often every followed process's memory map is read again anyway
PRUNE_SECONDS = 1.0  # how often followed threads are checked against /proc
EV_SYSCALL, EV_EXEC, EV_FORK = 1, 8, 9
NR_MMAP = 9
ST_ON_CPU, ST_UNKNOWN, T_LIFETIME, T_LAST_END, T_SLOTS = 0, 6, 7, 8, 9
ST_NAMES = ("on_cpu", "sleeping", "uninterruptible", "other", "preempted", "runqueue")


@dataclass
class Recording:
    """What one run recorded, before decoding: exact totals from the maps, raw stacks, the spool."""
    t0: int  # CLOCK_MONOTONIC ns when following began
    t_end: int  # when the last followed thread ended, or the recording stopped
    realtime_offset: int  # CLOCK_REALTIME - CLOCK_MONOTONIC, to date events
    totals: dict[str, tuple[int, int]]  # state -> (ns, count), incl. "lifetime"
    tables: dict[str, Any]  # the other totals, by map
    lost: dict[int, int]  # kind -> events the ring buffer could not take
    produced: dict[int, int]  # kind -> events made, kept or lost
    overflow: dict[str, int]  # map -> inserts refused because it was full
    stacks: dict[int, list[int]]  # stack id -> addresses, innermost first
    offcpu_stacks: list[tuple[int, int, int, int, int]]  # (tgid, reason, kstack, ustack, ns)
    oncpu_stacks: list[tuple[int, int, int, int, int]]  # (tgid, tid, kstack, ustack, samples)
    threads_ended: int
    threads_live: int
    spool: Path
    kept: int
    dropped: int  # over --max-events: read from the ring buffer but not kept
    maps: Maps
    tgids: set[int] = field(default_factory=set)


def _sum(value: Any) -> int:
    return sum(value) if hasattr(value, "__len__") else int(getattr(value, "value", value))


class Recorder:
    def __init__(self, program: Program, spool: Path, max_events: int) -> None:
        self.program, self.spool_path, self.max_events = program, spool, max_events
        self.spool: BinaryIO | None = None
        self.kept = self.dropped = 0
        self.maps = Maps()
        self.tgids: set[int] = set()
        self.pending: set[int] = set()  # processes whose memory map changed
        self.t0 = 0

    def start(self, first: list[tuple[int, int, int]]) -> int:
        """Load and attach, then follow the threads (tid, tgid, reason hint); returns t0."""
        bpf = self.program.load()
        self.spool = open(self.spool_path, "wb")
        bpf["events"].open_ring_buffer(self._on_event)
        threads, slots = bpf["threads"], bpf["sys_slots"]
        self.t0 = time.monotonic_ns()  # CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns()
        for tid, tgid, hint in first:
            leaf = threads.Leaf()
            leaf.since = leaf.born = self.t0
            leaf.tgid, leaf.state, leaf.reason, leaf.kstack, leaf.ustack = tgid, ST_UNKNOWN, hint, -1, -1
            threads[threads.Key(tid)] = leaf
            slot = slots[slots.Key(tid % len(slots))]
            if slot.tid == 0:  # as claim_slot() in core.bpf.c: the syscall path's fast table
                slot.tid, slot.enter = tid, 0
                slots[slots.Key(tid % len(slots))] = slot
            self.tgids.add(tgid)
            self.pending.add(tgid)
        self._snapshot()
        return self.t0

    def _on_event(self, _ctx: Any, data: Any, size: int) -> int:
        if self.kept >= self.max_events:
            self.dropped += 1
            return 0
        raw = ctypes.string_at(data, size)
        self.spool.write(struct.pack("<I", size) + raw)  # type: ignore[union-attr]
        self.kept += 1
        kind = raw[8]
        if kind == EV_FORK:
            child_tgid = int.from_bytes(raw[28:32], "little")
            self.tgids.add(child_tgid)
            self.pending.add(child_tgid)
        elif kind == EV_EXEC or (kind == EV_SYSCALL and raw[64] == NR_MMAP and raw[65] == 0):
            self.pending.add(int.from_bytes(raw[16:20], "little"))
        return 0

    def _snapshot(self, everyone: bool = False) -> None:
        for tgid in list(self.tgids if everyone else self.pending):
            if not self.maps.snapshot(tgid):
                self.tgids.discard(tgid)  # gone
        self.pending.clear()

    def live_threads(self) -> int:
        return len(self.program.bpf["threads"])

    def prune(self) -> None:
        """Forget followed threads that no longer exist: their last switch was missed (never expected,
        but a thread in the map forever would keep an attach running until its --duration)."""
        threads = self.program.bpf["threads"]
        for key in list(threads.keys()):
            if not alive(key.value):
                time.sleep(0.05)  # its last switch may be a moment behind its /proc entry
                if not alive(key.value) and key in threads:
                    try:
                        del threads[key]
                    except KeyError:
                        pass
                    slots = self.program.bpf["sys_slots"]
                    slot = slots[slots.Key(key.value % len(slots))]
                    if slot.tid == key.value:
                        slot.tid = 0
                        slots[slots.Key(key.value % len(slots))] = slot

    def run(self, done: Callable[[], bool], deadline: float | None, stop: threading.Event) -> None:
        """Drain the ring buffer until done() (checked every SNAPSHOT_SECONDS), the deadline or stop."""
        bpf = self.program.bpf
        last_snapshot = last_prune = time.monotonic()
        while not stop.wait(POLL_SECONDS):
            bpf.ring_buffer_consume()
            now = time.monotonic()
            self._snapshot(everyone=now - last_snapshot > SNAPSHOT_SECONDS)
            if now - last_prune > PRUNE_SECONDS:
                last_prune = now
                self.prune()
            if now - last_snapshot > SNAPSHOT_SECONDS:
                last_snapshot = now
                if done() or (deadline is not None and now >= deadline):
                    break

    def drain_exits(self, seconds: float = 0.5) -> None:
        """After the target exited: its threads' last switches may still be coming."""
        deadline = time.monotonic() + seconds
        while self.live_threads() and time.monotonic() < deadline:
            self.program.bpf.ring_buffer_consume()
            time.sleep(0.01)
