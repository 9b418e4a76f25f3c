"""The ring buffer `events`, read straight from its memory: no callback into Python per event.

The kernel lets a BPF ring buffer map be mapped into user space (kernel/bpf/ringbuf.c): at offset 0 the
consumer page, which holds consumer_pos and is the only writable page; at one page the producer page,
which holds producer_pos, followed by the data pages, which are mapped twice back to back so that a
record that wraps around the end is still contiguous in memory. Between consumer_pos and producer_pos
lie records of an 8-byte header (u32 length with a busy and a discard bit, u32 page offset) and the
data, each rounded up to 8 bytes. A record is busy from its reserve to its submit; the reader stops at
the first busy one and stores the position up to which it is done in consumer_pos, which gives the
space back to the kernel.

Reading a record's length and then its data with plain loads is safe on x86_64, whose loads are not
reordered with one another: the kernel clears the busy bit after it writes the data. (libbpf uses
acquire loads for the same reason, which x86_64 compiles to plain loads too.)

The records are not looked at one by one when the stream repeats itself (a syscall loop makes runs of
thousands of equal-sized syscall events): a run is checked with strided slices at C speed."""
from __future__ import annotations

import mmap
from typing import NamedTuple

HEADER = 8  # struct bpf_ringbuf_hdr: u32 len, u32 pg_off
BUSY, DISCARD = 1 << 31, 1 << 30  # BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT in the length
LENGTH = DISCARD - 1
KIND = 4  # the 32-bit word of a record holding the event's kind: after the header and struct head's ts
FIRST_CHUNK, MAX_CHUNK = 16, 4096  # records checked at once in a run: doubling from the first


def record_size(length: int) -> int:
    """Bytes a record takes in the ring: the header and its data, rounded up to 8."""
    return ((length & LENGTH) + HEADER + 7) & ~7


class Run(NamedTuple):
    """`count` records back to back from byte `offset`, each `size` bytes and of one event kind."""
    offset: int
    size: int
    count: int
    kind: int


def _run_length(words: memoryview, w: int, s: int, limit: int, n: int, kind: int) -> int:
    """How many records from 32-bit word w on, s words apart, have the length word n and the kind
    `kind` (limit at most): the first few one by one, as a mixed stream has short runs; then chunks of
    doubling size, each read as two strided slices."""
    run = 1
    while run < min(limit, 4):
        if words[w + s * run] != n or words[w + s * run + KIND] != kind:
            return run
        run += 1
    chunk = FIRST_CHUNK
    while run < limit:
        k = min(chunk, limit - run)
        base = w + s * run
        lens = words[base:base + s * k:s].tolist()
        kinds = words[base + KIND:base + KIND + s * k:s].tolist()
        if lens.count(n) != k or kinds.count(kind) != k:
            return run + next(i for i, (a, b) in enumerate(zip(lens, kinds)) if a != n or b != kind)
        run += k
        chunk = min(chunk * 2, MAX_CHUNK)
    return run


def runs(words: memoryview, start: int, end: int) -> tuple[list[Run], int]:
    """The committed records between byte offsets start and end of the data (words: the data as u32)
    as runs, and the offset where reading stopped: end, or the first busy record. Discarded records
    are stepped over; they are in no run."""
    found: list[Run] = []
    p = start
    while p < end:
        w = p >> 2
        n = words[w]
        if n & BUSY:
            break
        size = record_size(n)
        if n & DISCARD:
            p += size
            continue
        kind = words[w + KIND]
        count = _run_length(words, w, size >> 2, (end - p) // size, n, kind)
        found.append(Run(p, size, count, kind))
        p += size * count
    return found, p


class Ring:
    """A BPF ring buffer map of `size` data bytes (a power of two pages), mapped into this process."""

    def __init__(self, map_fd: int, size: int) -> None:
        page = mmap.PAGESIZE
        self.size, self.mask = size, size - 1
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._producer = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self._positions = memoryview(self._consumer).cast("Q"), memoryview(self._producer).cast("Q")
        self.data = memoryview(self._producer)[page:]  # 2 * size bytes: the data twice
        self.words = self.data.cast("I")

    def pending(self) -> tuple[int, int, int]:
        """(consumer_pos, and the data offsets from where to where the records not yet read lie)."""
        consumer = self._positions[0][0]
        start = consumer & self.mask
        return consumer, start, start + self._positions[1][0] - consumer

    def release(self, consumer: int) -> None:
        """Give the space up to position `consumer` back to the kernel (an aligned 8-byte store)."""
        self._positions[0][0] = consumer

    def close(self) -> None:
        for view in (self.words, self.data, *self._positions):
            view.release()
        self._consumer.close()
        self._producer.close()
