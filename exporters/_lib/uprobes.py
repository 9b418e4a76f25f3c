"""What a collector follows in user space: uprobes on the shared library its spec names, attached to each
file of it that a process maps, and the entries its per-process maps keep for processes that exited.

A uprobe is set on a file (libbpf finds the symbol's offset in it) and fires in every process that maps
that file, so one attachment per library file covers all its users; the watcher scans /proc/*/maps every
INTERVAL seconds for new ones. A process that runs the library's code without mapping it (linked
statically, or its symbols stripped) cannot be probed so: it is counted as not covered, never missed
silently."""
from __future__ import annotations

import logging
import mmap
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.core import Metric as Family
from prometheus_client.registry import Collector

from . import libbpf
from .bpf import Loaded
from .spec import Spec, load_self

log = logging.getLogger("lmp.exporter")
INTERVAL = 5.0
# What a TLS library leaves in a binary that embeds it: its version strings (OpenSSL, BoringSSL) or Go's
# crypto/tls package path.
EMBEDDED = re.compile(rb"OpenSSL [0-9]\.[0-9]|BoringSSL|crypto/tls\.")
SYMBOL = b"\0SSL_write\0"  # in the string table of a binary that kept its symbols


def embedded_tls(path: str) -> str | None:
    """Why the binary at path is not covered ("static": it embeds a TLS library with its symbols,
    "stripped": without them), or None when it embeds none."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if not EMBEDDED.search(data):  # type: ignore[call-overload]
                return None
            return "static" if data.find(SYMBOL) >= 0 else "stripped"
    except (OSError, ValueError):  # gone, unreadable, or empty
        return None


class Watcher(Collector):
    """Attaches the spec's uprobes to the library files processes map, and deletes the per-process maps'
    entries of exited processes, every INTERVAL seconds; serves lmp_exporter_uprobe_* about it."""

    def __init__(self, spec: Spec, loaded: Loaded) -> None:
        self.spec, self.loaded = spec, loaded
        self.pattern = re.compile(spec.uprobes.library) if spec.uprobes else None
        self.links: dict[tuple[int, int], list[int]] = {}  # library file (dev, inode) -> its links
        self.libraries: dict[tuple[int, int], tuple[str, bool]] = {}  # -> (path, every probe attached)
        self.binaries: dict[tuple[int, int], str | None] = {}  # executable -> embedded_tls()
        self.uncovered: dict[str, int] = {}  # reason -> processes
        self.help = {m.name: m.help for m in load_self(check=False).metrics}
        self.per_process = [loaded.maps[m.name] for m in spec.internal_maps if m.per_process and m.name in loaded.maps]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"{spec.name}-uprobes")

    def start(self) -> None:
        self.scan()  # before serving: requests from the first second on are seen
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
        for links in self.links.values():
            for link in links:
                libbpf.destroy_link(link)
        self.links.clear()

    def _run(self) -> None:
        while not self.stop.wait(INTERVAL):
            try:
                self.scan()
            except Exception:  # a scan that failed is retried at the next; serving goes on
                log.exception("%s: scanning processes failed", self.spec.name)

    def scan(self) -> None:
        pids = {int(p) for p in os.listdir("/proc") if p.isdigit()}
        if self.pattern is not None and self.loaded.uprobes:
            self._libraries(pids)
        for m in self.per_process:
            for key in libbpf.keys(m.fd, m.key_size):
                tgid = int.from_bytes(key[:4], "little")
                if tgid not in pids and not os.path.exists(f"/proc/{tgid}"):  # not new since the listing
                    m.delete(key)

    def _libraries(self, pids: set[int]) -> None:
        uncovered: dict[str, int] = {}
        for pid in pids:
            root = f"/proc/{pid}/root"  # the process's own view of the file system (containers)
            try:
                maps = Path(f"/proc/{pid}/maps").read_text()
            except OSError:  # exited, or a kernel thread
                continue
            found = {line.split(None, 5)[5] for line in maps.splitlines()
                     if line.count(" ") >= 5 and self.pattern.search(line.rsplit("/", 1)[-1])}  # type: ignore[union-attr]
            for path in found:
                self._attach(root + path, path)
            if not found and maps:
                reason = self._binary(pid)
                if reason:
                    uncovered[reason] = uncovered.get(reason, 0) + 1
        self.uncovered = uncovered

    def _binary(self, pid: int) -> str | None:
        try:
            st = os.stat(f"/proc/{pid}/exe")
        except OSError:
            return None
        key = (st.st_dev, st.st_ino)
        if key not in self.binaries:
            self.binaries[key] = embedded_tls(f"/proc/{pid}/exe")
        return self.binaries[key]

    def _attach(self, path: str, shown: str) -> None:
        try:
            st = os.stat(path)
        except OSError:
            return
        key = (st.st_dev, st.st_ino)
        if key in self.libraries or self.spec.uprobes is None:
            return
        links, ok = [], True
        for symbol, programs in self.spec.uprobes.functions.items():
            for name in programs:
                prog = self.loaded.uprobes.get(name)
                if prog is None:  # an option left it out
                    continue
                try:
                    links.append(libbpf.attach_uprobe(prog, path, symbol, libbpf.section(prog) == "uretprobe"))
                except OSError as err:  # an older library without this symbol (SSL_read_ex came in 1.1.1)
                    log.warning("%s: %s", self.spec.name, err)
                    ok = False
        self.links[key], self.libraries[key] = links, (shown, ok)

    def collect(self) -> Iterator[Family]:
        name = self.spec.name
        libraries = GaugeMetricFamily("lmp_exporter_uprobe_libraries", self.help["lmp_exporter_uprobe_libraries"],
                                      labels=["collector", "library"])
        for path, ok in sorted(dict(self.libraries.values()).items()):
            libraries.add_metric([name, path], int(ok))
        yield libraries
        uncovered = GaugeMetricFamily("lmp_exporter_uprobe_uncovered_processes",
                                      self.help["lmp_exporter_uprobe_uncovered_processes"], labels=["collector", "reason"])
        for reason in ("static", "stripped"):
            uncovered.add_metric([name, reason], self.uncovered.get(reason, 0))
        yield uncovered
