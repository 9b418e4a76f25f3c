"""Naming stack frames: kernel addresses through /proc/kallsyms (BCC's cache), user addresses through the
followed process's memory map and the symbol tables of the files mapped there.

A process's map (/proc/PID/maps) is gone once it exits, and a run often ends after its processes did,
so the recorder takes snapshots while they live (at exec, after mmaps, and every 100 ms); an address
is looked up in the newest snapshot that maps it. Symbol tables are read with pyelftools from the files
themselves (.symtab, else .dynsym), which stay on disk after the process is gone."""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    offset: int  # file offset of `start`
    path: str


def parse_maps(text: str) -> list[Mapping]:
    """The executable mappings of a /proc/PID/maps text: files and [vdso]."""
    found = []
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or "x" not in parts[1]:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        found.append(Mapping(start, end, int(parts[2], 16), parts[5].removesuffix(" (deleted)")))
    return found


class Maps:
    """Snapshots of the followed processes' executable mappings, newest first."""

    def __init__(self) -> None:
        self.snapshots: dict[int, list[list[Mapping]]] = {}
        self.last_text: dict[int, str] = {}
        self.comms: dict[int, str] = {}  # process names, for the flame graphs' root frames

    def snapshot(self, tgid: int) -> bool:
        """Read the process's map again; False when the process is gone."""
        try:
            text = Path(f"/proc/{tgid}/maps").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return False
        if text and text != self.last_text.get(tgid):
            self.last_text[tgid] = text
            try:
                self.comms[tgid] = Path(f"/proc/{tgid}/comm").read_text().strip()
            except OSError:
                pass
            self.snapshots.setdefault(tgid, []).insert(0, parse_maps(text))
        return bool(text)

    def find(self, tgid: int, addr: int) -> tuple[Mapping, int] | None:
        """The mapping that holds addr, and addr's offset in its file."""
        for mappings in self.snapshots.get(tgid, ()):
            for m in mappings:
                if m.start <= addr < m.end:
                    return m, addr - m.start + m.offset
        return None


class SymbolTable:
    """A file's function symbols by address (link-time virtual addresses) and its loadable segments."""

    def __init__(self, path: str) -> None:
        self.starts: list[int] = []
        self.entries: list[tuple[int, int, str]] = []  # (start, size, name), sorted
        self.segments: list[tuple[int, int, int]] = []  # (file offset, size, virtual address)
        try:
            with open(path, "rb") as f:
                elf = ELFFile(f)
                self.segments = [(s["p_offset"], s["p_filesz"], s["p_vaddr"]) for s in elf.iter_segments()
                                 if s["p_type"] == "PT_LOAD"]
                symbols: dict[int, tuple[int, str]] = {}
                for name in (".dynsym", ".symtab"):  # .symtab, when there is one, has the local ones too
                    section = elf.get_section_by_name(name)
                    for sym in section.iter_symbols() if section is not None else ():
                        if sym["st_info"]["type"] in ("STT_FUNC", "STT_GNU_IFUNC") and sym["st_value"]:
                            symbols[sym["st_value"]] = (sym["st_size"], sym.name)
        except (OSError, ELFError, ValueError):
            return
        self.entries = sorted((start, size, name) for start, (size, name) in symbols.items())
        self.starts = [e[0] for e in self.entries]

    def vaddr(self, file_offset: int) -> int | None:
        for offset, size, vaddr in self.segments:
            if offset <= file_offset < offset + size:
                return file_offset - offset + vaddr
        return None

    def name(self, vaddr: int) -> str | None:
        i = bisect.bisect_right(self.starts, vaddr) - 1
        if i >= 0:
            start, size, name = self.entries[i]
            if vaddr < start + max(size, 1):
                return name
        return None


@lru_cache(maxsize=256)
def symbol_table(path: str) -> SymbolTable:
    return SymbolTable(path)


class Symbolizer:
    """Frame names: `func` for a symbol, `file+0xOFFSET` where a file has none, `[unknown]` outside
    every mapping; kernel frames end in `_[k]`, as flamegraph.pl colours them."""

    def __init__(self, maps: Maps) -> None:
        self.maps = maps
        self.cache: dict[tuple[int, int], str] = {}

    def user(self, tgid: int, addr: int) -> str:
        key = (tgid, addr)
        if key not in self.cache:
            self.cache[key] = self._user(tgid, addr)
        return self.cache[key]

    def _user(self, tgid: int, addr: int) -> str:
        found = self.maps.find(tgid, addr)
        if found is None:
            return "[unknown]"
        mapping, file_offset = found
        if mapping.path.startswith("["):
            return mapping.path  # [vdso]
        table = symbol_table(mapping.path)
        vaddr = table.vaddr(file_offset)
        name = table.name(vaddr) if vaddr is not None else None
        return name or f"{Path(mapping.path).name}+{file_offset:#x}"

    @staticmethod
    @lru_cache(maxsize=65536)
    def kernel(addr: int) -> str:
        from bcc import BPF
        name = BPF.ksym(addr).decode(errors="replace")
        return f"{name}_[k]"
