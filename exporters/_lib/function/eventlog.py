"""A function component's events (connguard's refusals, say): read from its BPF ring buffer every POLL_MS,
numbered, and kept in a bounded queue that the exporter serves as JSON at /events?after=N for the admin's
audit feed to pull into its audit log.

Bounded on every side: the ring buffer has a fixed size (a full one fails the kernel's write, counted in
lmp_exporter_map_overflow_total), the queue keeps the last CAPACITY events, and a page holds at most PAGE.
Events the admin was too slow to pull are reported as `dropped`, never silently lost."""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Any, Callable

from ..libbpf import RingBuffer

CAPACITY = 1024
PAGE = 256
POLL_MS = 200  # how often the ring buffer is drained; bounds how long close() takes


class EventLog:
    """`decode` turns one record's bytes into the event's fields."""

    def __init__(self, ring_fd: int, decode: Callable[[bytes], dict[str, Any]]) -> None:
        self.decode = decode
        self.events: deque[dict[str, Any]] = deque(maxlen=CAPACITY)
        self.next = 0  # the number the next event gets
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.ring = RingBuffer(ring_fd, self._received)
        self.thread = threading.Thread(target=self._poll, daemon=True, name="lmp-events")
        self.thread.start()

    def _poll(self) -> None:
        while not self.stopping.wait(POLL_MS / 1000):  # the programs do not wake us: we look on a schedule
            self.ring.consume()

    def _received(self, record: bytes) -> None:
        event = {"seq": 0, "at": round(time.time(), 3), **self.decode(record)}
        with self.lock:
            event["seq"] = self.next
            self.next += 1
            self.events.append(event)

    def page(self, after: int) -> dict[str, Any]:
        """Events numbered `after` and later (at most PAGE), the number to ask for next, how many of those
        asked for are gone already, and this process's pid (a new pid: the numbering started again)."""
        with self.lock:
            oldest = self.events[0]["seq"] if self.events else self.next
            events = [e for e in self.events if e["seq"] >= after][:PAGE]
            upto = events[-1]["seq"] + 1 if events else self.next
        return {"pid": os.getpid(), "events": events, "next": upto, "dropped": max(0, oldest - after)}

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.ring.close()
