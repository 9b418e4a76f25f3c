"""Label decoders: turn the raw numbers in BPF map keys into the words people search for.

Each decoder maps a key field's value to a label value and caches the answer, since the same keys come
back at every scrape. The set of values is bounded by the maps' sizes, so the caches are too."""
from __future__ import annotations

import errno
import os
import platform
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable

CGROUP2_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))


def _syscall_table() -> dict[int, str]:
    """Syscall numbers for this architecture, from the kernel's uapi header (linux-libc-dev), else BCC's table."""
    machine = platform.machine()
    headers = {"x86_64": "asm/unistd_64.h", "aarch64": "asm-generic/unistd.h"}.get(machine)
    table: dict[int, str] = {}
    for include in (Path(f"/usr/include/{machine}-linux-gnu"), Path("/usr/include")):
        header = include / headers if headers else None
        if header and header.is_file():
            for name, number in re.findall(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", header.read_text()):
                table.setdefault(int(number), name)
            break
    if not table:
        try:
            from bcc.syscall import syscalls  # Debian's BCC ships an x86_64 table
            table = {nr: name.decode() for nr, name in syscalls.items()}
        except ImportError:
            pass
    return table


@lru_cache(maxsize=1)
def syscall_names() -> dict[int, str]:
    return _syscall_table()


def syscall(nr: int) -> str:
    # Syscalls newer than the installed headers keep their number, so they remain distinct and findable.
    return syscall_names().get(nr) or f"syscall_{nr}"


def errno_name(code: int) -> str:
    return errno.errorcode.get(code, f"E{code}")


@lru_cache(maxsize=4096)
def disk(dev: int) -> str:
    """A kernel dev_t (major << 20 | minor, as block tracepoints carry it) to its name: 254:0 -> vda."""
    major, minor = dev >> 20, dev & 0xFFFFF
    link = Path(f"/sys/dev/block/{major}:{minor}")
    try:
        return os.path.basename(os.readlink(link))
    except OSError:
        return f"{major}:{minor}"


class CgroupPaths:
    """cgroup v2 id -> path. The id bpf_get_current_cgroup_id() returns is the cgroup directory's inode,
    so a walk of the v2 hierarchy finds it; the walk is redone when an unknown id appears."""

    def __init__(self, roots: tuple[Path, ...] = CGROUP2_ROOTS) -> None:
        # Hybrid hosts mount v2 at /sys/fs/cgroup/unified; pure v2 hosts at /sys/fs/cgroup.
        self.root = next((r for r in roots if (r / "cgroup.procs").exists()), roots[-1])
        self.paths: dict[int, str] = {}

    def _walk(self) -> None:
        paths: dict[int, str] = {}
        for top, _, _ in os.walk(self.root):
            try:
                rel = os.path.relpath(top, self.root)
                paths[os.stat(top).st_ino] = "/" if rel == "." else "/" + rel
            except OSError:  # removed while we walked
                continue
        self.paths = paths

    def __call__(self, cgroup_id: int) -> str:
        if cgroup_id not in self.paths:
            self._walk()
        return self.paths.get(cgroup_id, f"cgroup_{cgroup_id}")


def comm(raw: bytes | str) -> str:
    return raw.decode(errors="replace").rstrip("\0") if isinstance(raw, bytes) else raw


def make(decoder: str, values: tuple[str, ...] = ()) -> Callable[[object], str]:
    """The decoder function a spec label names."""
    if decoder == "enum":
        return lambda v: values[v] if 0 <= int(v) < len(values) else str(v)
    simple: dict[str, Callable[[object], str]] = {
        "int": str,
        "syscall": lambda v: syscall(int(v)),
        "errno": lambda v: errno_name(int(v)),
        "disk": lambda v: disk(int(v)),
        "comm": lambda v: comm(bytes(v)) if not isinstance(v, (bytes, str)) else comm(v),
    }
    if decoder == "cgroup":
        paths = CgroupPaths()
        return lambda v: paths(int(v))
    return simple[decoder]
