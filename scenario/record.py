"""The recording loop: load the kernel code, follow the first threads, drain the ring buffer into a spool
file until the target is done, then read the exact totals and the stacks.

Events are not decoded while recording: the ring buffer is read straight from its memory
(scenario/ringbuf.py) and the committed records are copied to the spool as they lie there, header and
all, in one write per drain, which keeps the reader ahead of millions of events a second and its memory
flat; scenario/events.py decodes the spool afterwards. The only work done on the way is noticing
execs, forks and mmaps, after which the process's memory map is read again (symbols.py needs it to name
user stack frames, and it disappears with the process)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .loader import Program
from .ringbuf import HEADER, Ring, runs
from .symbols import Maps
from .target import alive

POLL_SECONDS = 0.02  # how often the ring buffer is drained: 8 MB fill in ~50 ms at 2M syscalls/s
SNAPSHOT_SECONDS = 0.1  # how often every followed process's memory map is read again anyway
PRUNE_SECONDS = 1.0  # how often followed threads are checked against /proc
EV_SYSCALL, EV_EXEC, EV_FORK = 1, 8, 9
NR_MMAP = 9
# 32-bit words of a record (ring header, then the event; scenario/events.py has the layouts) peeked at.
W_TGID, W_CHILD_TGID, W_NR = (HEADER + 16) // 4, (HEADER + 28) // 4, (HEADER + 64) // 4
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
    reader_seconds: float  # spent reading the ring buffer (and writing the spool)
    maps: Maps
    tgids: set[int] = field(default_factory=set)


def _sum(value: Any) -> int:
    return sum(value) if hasattr(value, "__len__") else int(getattr(value, "value", value))


class Recorder:
    def __init__(self, program: Program, spool: Path, max_events: int) -> None:
        self.program, self.spool_path, self.max_events = program, spool, max_events
        self.spool: BinaryIO | None = None
        self.ring: Ring | None = None
        self.kept = self.dropped = 0
        self.reader_seconds = 0.0
        self.maps = Maps()
        self.tgids: set[int] = set()
        self.pending: set[int] = set()  # processes whose memory map changed
        self.t0 = 0

    def start(self, first: list[tuple[int, int, int]]) -> int:
        """Load and attach, then follow the threads (tid, tgid, reason hint); returns t0."""
        bpf = self.program.load()
        self.spool = open(self.spool_path, "wb")
        events = bpf["events"]
        self.ring = Ring(events.map_fd, events.max_entries)
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

    def drain(self) -> int:
        """Copy the committed records to the spool (up to --max-events; the rest are only counted) and
        give their space back; returns how many bytes of the buffer were read."""
        began, ring = time.perf_counter(), self.ring
        consumer, start, end = ring.pending()  # type: ignore[union-attr]
        found, stop = runs(ring.words, start, end)  # type: ignore[union-attr]
        room, read = max(self.max_events - self.kept, 0), 0
        cut = stop  # where the records over --max-events begin
        for run in found:
            self._peek(run.offset >> 2, run.size >> 2, run.count, run.kind)  # kept or not: the stacks need maps
            if read <= room < read + run.count:
                cut = run.offset + run.size * (room - read)
            read += run.count
        self.kept += min(read, room)
        self.dropped += read - min(read, room)
        if cut > start:
            self.spool.write(ring.data[start:cut])  # type: ignore[union-attr]
        ring.release(consumer + stop - start)  # type: ignore[union-attr]
        self.reader_seconds += time.perf_counter() - began
        return stop - start

    def _peek(self, w: int, s: int, count: int, kind: int) -> None:
        """Note the processes whose memory map changed in a run of records (s words apart from word w)."""
        words = self.ring.words  # type: ignore[union-attr]
        if kind == EV_SYSCALL:
            nrs = words[w + W_NR:w + W_NR + s * count:s].tolist()
            if NR_MMAP in nrs:
                self.pending.update(words[w + s * i + W_TGID] for i, nr in enumerate(nrs) if nr == NR_MMAP)
        elif kind == EV_FORK:
            children = words[w + W_CHILD_TGID:w + W_CHILD_TGID + s * count:s].tolist()
            self.tgids.update(children)
            self.pending.update(children)
        elif kind == EV_EXEC:
            self.pending.update(words[w + W_TGID:w + W_TGID + s * count:s].tolist())

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
        last_snapshot = last_prune = time.monotonic()
        wait = POLL_SECONDS
        while not stop.wait(wait):
            began = time.monotonic()
            full = self.drain() / self.ring.size  # type: ignore[union-attr]
            now = time.monotonic()
            self._snapshot(everyone=now - last_snapshot > SNAPSHOT_SECONDS)
            if now - last_prune > PRUNE_SECONDS:
                last_prune = now
                self.prune()
            if now - last_snapshot > SNAPSHOT_SECONDS:
                last_snapshot = now
                if done() or (deadline is not None and now >= deadline):
                    break
            # A drain every POLL_SECONDS however long the last one took (a write can stall), and the
            # next one at once when the buffer was half full.
            wait = 0 if full > 0.5 else max(POLL_SECONDS - (time.monotonic() - began), 0)

    def drain_exits(self, seconds: float = 0.5) -> None:
        """After the target exited: its threads' last switches may still be coming."""
        deadline = time.monotonic() + seconds
        while self.live_threads() and time.monotonic() < deadline:
            self.drain()
            time.sleep(0.01)

    def close(self) -> None:
        """Unmap the ring buffer (the mapping holds the map) and close the spool."""
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        if self.spool is not None:
            self.spool.close()
