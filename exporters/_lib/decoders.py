"""Label decoders: turn the raw numbers in BPF map keys into the words people search for.

Each decoder maps a key field's value to a label value and caches the answer, since the same keys come
back at every scrape. The set of values is bounded by the maps' sizes, so the caches are too."""
from __future__ import annotations

import errno
import glob
import ipaddress
import os
import platform
import re
import signal
import socket
import struct
import time
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Callable

TRACEFS = Path("/sys/kernel/tracing")


def _syscall_table() -> dict[int, str]:
    """Syscall numbers for this architecture, from the kernel's uapi header (linux-libc-dev, which gcc and
    the container image bring); without it, syscalls are named by number."""
    machine = platform.machine()
    headers = {"x86_64": "asm/unistd_64.h", "aarch64": "asm-generic/unistd.h"}.get(machine)
    table: dict[int, str] = {}
    for include in (Path(f"/usr/include/{machine}-linux-gnu"), Path("/usr/include")):
        header = include / headers if headers else None
        if header and header.is_file():
            for name, number in re.findall(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", header.read_text()):
                table.setdefault(int(number), name)
            break
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


def cgroup2_root(mountinfo: Path = Path("/proc/self/mountinfo")) -> Path:
    """Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on pure v2 hosts, /sys/fs/cgroup/unified
    on hybrid ones. Field 5 of a mountinfo line is the mount point; the type follows the " - "."""
    for line in mountinfo.read_text().splitlines():
        fields, _, rest = line.partition(" - ")
        if rest.split(" ", 1)[0] == "cgroup2":
            return Path(fields.split()[4])
    raise FileNotFoundError("no cgroup2 file system is mounted (see /proc/self/mountinfo)")


def own_cgroup2() -> Path:
    """This process's own cgroup v2 directory ("0::/path" in /proc/self/cgroup), where the tests and
    benchmarks nest the cgroups they make."""
    own = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
               if line.startswith("0::"))
    return cgroup2_root() / own.strip().lstrip("/")


class CgroupPaths:
    """cgroup v2 id -> path. The id bpf_get_current_cgroup_id() returns is the cgroup directory's inode,
    so a walk of the v2 hierarchy finds it; the walk is redone when an unknown id appears."""

    def __init__(self) -> None:
        self.root = cgroup2_root()
        self.paths: dict[int, str] = {}
        self.walked = 0.0  # monotonic time of the last walk
        self.missing: set[int] = set()  # ids the last walk did not find

    def _walk(self) -> None:
        paths: dict[int, str] = {}
        for top, _, _ in os.walk(self.root):
            try:
                rel = os.path.relpath(top, self.root)
                paths[os.stat(top).st_ino] = "/" if rel == "." else "/" + rel
            except OSError:  # removed while we walked
                continue
        self.paths, self.walked, self.missing = paths, time.monotonic(), set()

    def __call__(self, cgroup_id: int) -> str:
        # A new id walks the hierarchy at once; an id the last walk missed (a removed cgroup) waits a
        # second, so that dead ids cannot make every scrape walk again.
        if cgroup_id not in self.paths and (cgroup_id not in self.missing or time.monotonic() - self.walked > 1.0):
            self._walk()
            if cgroup_id not in self.paths:
                self.missing.add(cgroup_id)
        return self.paths.get(cgroup_id, f"cgroup_{cgroup_id}")

    def known(self, cgroup_id: int) -> bool:
        return cgroup_id == 0 or resolved(self(cgroup_id))


def resolved(cgroup: str) -> bool:
    """A cgroup label that names a cgroup, not the id of one removed before it was first read."""
    return not cgroup.startswith("cgroup_")


_cgroups: CgroupPaths | None = None


def cgroups() -> CgroupPaths:
    """The one cgroup id -> path map of this process, shared by every label that decodes cgroups."""
    global _cgroups
    if _cgroups is None:
        _cgroups = CgroupPaths()
    return _cgroups


@lru_cache(maxsize=64)
def symbolic_names(event: str, field: str, tracefs: Path = TRACEFS) -> dict[int, str]:
    """The names a tracepoint's print format gives a field's values: __print_symbolic(REC->reason,
    { 2, "NOT_SPECIFIED" }, ...) in events/skb/kfree_skb/format. They come from the running kernel,
    so new values (drop reasons, TCP states) are named without a change here."""
    text = (tracefs / "events" / event.replace(":", "/") / "format").read_text()
    start = text.find(f"__print_symbolic(REC->{field},")
    if start < 0:
        return {}
    depth, end = 0, start
    for end in range(text.index("(", start), len(text)):  # to the ')' that closes __print_symbolic(
        depth += {"(": 1, ")": -1}.get(text[end], 0)
        if depth == 0:
            break
    pairs = re.findall(r'\{\s*(-?(?:0x)?[0-9a-fA-F]+),\s*"([^"]*)"\s*\}', text[start:end])
    return {int(n, 0): name for n, name in pairs}


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}" if number else "none"


@lru_cache(maxsize=1024)
def irq(number: int) -> str:
    """An interrupt number to what the kernel says handles it (/sys/kernel/irq/N/actions), with the number:
    "24:virtio0-config"."""
    try:
        actions = Path(f"/sys/kernel/irq/{number}/actions").read_text().strip()
    except OSError:
        actions = ""
    return f"{number}:{actions}" if actions else str(number)


# struct lmp_addr (lmp.h): family (4 or 6, 0 for none), prefix length, port in network order, then the
# address in network order (an IPv4 address in its first 4 bytes).
LMP_ADDR = struct.Struct("!BBH16s")


def _address(raw: bytes) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address | None, int, int]:
    family, prefixlen, port, addr = LMP_ADDR.unpack(bytes(raw)[:LMP_ADDR.size])
    if family == 4:
        return ipaddress.IPv4Address(addr[:4]), prefixlen, port
    if family == 6:
        return ipaddress.IPv6Address(addr), prefixlen, port
    return None, prefixlen, port


def cidr(raw: bytes) -> str:
    """A rule's network, "203.0.113.0/24" or "2001:db8::/32"; "" where no rule matched."""
    address, prefixlen, _ = _address(raw)
    return f"{address}/{prefixlen}" if address is not None else ""


def endpoint(raw: bytes) -> str:
    """An address and port, "10.0.0.1:5432" or "[::1]:8080"."""
    address, _, port = _address(raw)
    if address is None:
        return ""
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def interface(ifindex: int, known: Mapping[int, str]) -> str:
    """An interface by its index: the name a component attached to (`known`), else this namespace's."""
    if ifindex in known:
        return known[ifindex]
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return str(ifindex)


def comm(raw: bytes | str) -> str:
    return raw.decode(errors="replace").rstrip("\0") if isinstance(raw, bytes) else raw


def running_comms() -> set[str]:
    """The command names of every task running now (each thread's own: a thread may rename itself)."""
    names = set()
    for path in glob.glob("/proc/[0-9]*/task/[0-9]*/comm"):
        try:
            with open(path, "rb") as f:
                names.add(comm(f.read().rstrip(b"\n")))
        except OSError:  # exited while we looked
            continue
    return names


def make(decoder: str, values: tuple[str, ...] = (), event: str | None = None, field: str = "",
         interfaces: Mapping[int, str] | None = None) -> Callable[[object], str]:
    """The decoder function a spec label names; `interfaces`: the names of the interfaces a function
    component attached to (Loaded.interfaces)."""
    if decoder == "enum":
        return lambda v: values[v] if 0 <= int(v) < len(values) else str(v)
    if decoder == "symbolic":
        names = symbolic_names(event or "", field)
        return lambda v: names.get(int(v), str(v))
    simple: dict[str, Callable[[object], str]] = {
        "int": str,
        "syscall": lambda v: syscall(int(v)),
        "errno": lambda v: errno_name(int(v)),
        "disk": lambda v: disk(int(v)),
        "pid": str,  # a process id (tgid): keys of exited processes are forgotten
        "comm": lambda v: comm(bytes(v)) if not isinstance(v, (bytes, str)) else comm(v),  # a task's name
        "text": lambda v: comm(bytes(v)) if not isinstance(v, (bytes, str)) else comm(v),  # any other string
        "signal": lambda v: signal_name(int(v)),
        "irq": lambda v: irq(int(v)),
        "cidr": lambda v: cidr(bytes(v)),  # type: ignore[call-overload]
        "endpoint": lambda v: endpoint(bytes(v)),  # type: ignore[call-overload]
        "interface": lambda v: interface(int(v), interfaces or {}),
        "port": lambda v: str(int(v)) if int(v) else "other",  # 0: the ports past the kernel's limit, folded
    }
    if decoder == "cgroup":
        paths = cgroups()
        return lambda v: paths(int(v))
    return simple[decoder]
