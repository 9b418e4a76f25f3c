"""Loading a collector's kernel code with BCC: the hooks it requires, the -D flags, compile and attach."""
from __future__ import annotations

import ctypes
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .decoders import cgroup2_root
from .links import ATTACH_TYPES, Link
from .spec import Spec

TRACEFS = Path("/sys/kernel/tracing")
VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
LIB_DIR = Path(__file__).resolve().parent  # holds lmp.h


class LoadError(RuntimeError):
    """The collector cannot run on this host; the message says why and what to do."""


def missing_hooks(spec: Spec, tracefs: Path = TRACEFS) -> list[str]:
    """The hooks in `requires` that this kernel lacks (tracepoint names as category:event)."""
    missing = []
    if spec.tracepoints or spec.raw_tracepoints:
        events = tracefs / "events"
        if not events.is_dir():
            raise LoadError(f"tracefs is not mounted at {tracefs}: mount -t tracefs tracefs {tracefs}")
        missing += [tp for tp in spec.tracepoints if not (events / tp.replace(":", "/")).is_dir()]
        for raw in spec.raw_tracepoints:  # a raw tracepoint has the name of a tracepoint in any category
            if not any(events.glob(f"*/{raw}")):
                missing.append(raw)
    if any(hook.startswith("cgroup/") for hook in spec.programs):
        try:
            cgroup2_root()
        except FileNotFoundError:
            missing += [f"{hook} (no cgroup v2 hierarchy is mounted)" for hook in spec.programs]
    return missing


def btf_offsets(fields: tuple[str, ...], vmlinux: Path = VMLINUX_BTF) -> dict[str, int]:
    """Byte offsets of struct fields ("task_struct.exit_code") in the running kernel, from its BTF.

    The installed headers may not match the kernel, so a struct read through them returns garbage;
    BTF describes the kernel that is running. bpftool prints each struct's members with their type
    ids and bit offsets. A field may sit in an anonymous struct or union member (tcp_skb_cb's
    tcp_gso_segs does): those are listed as types of their own, just before the struct that holds
    them, so every anonymous one seen is kept until the fields asked for are all resolved."""
    wanted: dict[str, set[str]] = {}
    for f in fields:
        struct, member = f.split(".")
        wanted.setdefault(struct, set()).add(member)
    members: dict[int, list[tuple[str, int, int]]] = {}  # type id -> (name, type id, bit offset)
    ids: dict[str, int] = {}  # struct name -> type id
    found: dict[str, int] = {}

    def bit_offset(type_id: int, name: str) -> int | None:
        for member, member_type, bits in members.get(type_id, ()):
            if member == name:
                return bits
            if member == "(anon)" and (inner := bit_offset(member_type, name)) is not None:
                return bits + inner
        return None

    def resolve() -> bool:
        for struct, names in wanted.items():
            for name in names:
                if struct in ids and (bits := bit_offset(ids[struct], name)) is not None:
                    found[f"{struct}.{name}"] = bits // 8
        return len(found) == len(fields)

    if wanted:
        if not vmlinux.exists():
            raise LoadError(f"this kernel has no BTF ({vmlinux}); the collector needs {', '.join(fields)}")
        proc = subprocess.Popen(["bpftool", "btf", "dump", "file", str(vmlinux)], stdout=subprocess.PIPE, text=True)
        current = None
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.startswith("["):
                if current is not None and current == ids.get(current_name) and resolve():
                    break  # the last struct asked for is complete, and everything resolves
                current = None
                match = re.match(r"\[(\d+)\] (?:STRUCT|UNION) '([\w()]+)'", line)
                if match and (match.group(2) == "(anon)" or (match.group(2) in wanted and match.group(2) not in ids)):
                    current, current_name = int(match.group(1)), match.group(2)
                    members[current] = []
                    if current_name != "(anon)":
                        ids[current_name] = current
            elif current is not None and (m := re.match(r"\s+'([\w()]+)' type_id=(\d+) bits_offset=(\d+)", line)):
                members[current].append((m.group(1), int(m.group(2)), int(m.group(3))))
        proc.kill()
        proc.wait()
        resolve()
    missing = [f for f in fields if f not in found]
    if missing:
        raise LoadError(f"the kernel's BTF has no {', '.join(missing)}")
    return found


def cflags(spec: Spec, values: dict[str, bool | int]) -> list[str]:
    """Options become -D<OPTION>=<int>; every map gets its overflow index as -DLMP_MAP_<map>=<i>;
    each BTF field its byte offset as -DBTF_<struct>_<field>=<n>."""
    _, maps = spec.active(values)
    flags = [f"-I{LIB_DIR}", f"-DLMP_MAX_MAPS={max(len(maps), 1)}"]
    flags += [f"-DLMP_MAP_{name}={i}" for i, name in enumerate(maps)]
    flags += [f"-D{name.upper()}={int(values[name])}" for name in spec.options]
    flags += [f"-DBTF_{f.replace('.', '_')}={offset}" for f, offset in btf_offsets(spec.btf_fields).items()]
    return flags


@dataclass
class Loaded:
    bpf: Any  # bcc.BPF
    maps: list[str]  # in overflow-index order
    seconds: float  # compile + load + attach
    required: tuple[str, ...] = ()  # the tracepoints the spec requires
    closed: bool = False
    programs: dict[str, int] = field(default_factory=dict)  # function components: hook -> program fd
    links: dict[str, Link] = field(default_factory=dict)  # "hook:target" -> its link, kept by the component

    def attached(self) -> dict[str, bool]:
        """Every required tracepoint and every hook a program is attached to: True where attached. A
        required hook no program attached to (a handler renamed or compiled out) shows False. A function
        component's hooks are "hook:target", one per link, False once the kernel detached it."""
        open_hooks = {tp.decode() for tp in (*self.bpf.tracepoint_fds, *self.bpf.raw_tracepoint_fds)}
        hooks = {hook: hook in open_hooks for hook in sorted({*self.required, *open_hooks})}
        return {**hooks, **{name: link.attached() for name, link in sorted(self.links.items())}}

    def close(self) -> None:
        """Detach every program and free the maps."""
        if not self.closed:
            self.closed = True
            for link in self.links.values():
                link.close()
            self.bpf.cleanup()


def programs_held_by(pid: int) -> set[int]:
    """The ids of the BPF programs a process holds open (prog_id in its file descriptors' fdinfo)."""
    ids = set()
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            ids.update(int(line.split()[1]) for line in info.read_text().splitlines() if line.startswith("prog_id:"))
        except OSError:  # closed meanwhile
            continue
    return ids


def give_back_memory() -> None:
    """BCC's compiler leaves ~25 MB of freed heap in the process; glibc returns it to the kernel."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def source(spec: Spec) -> str:
    """The collector's .bpf.c with lmp.h placed in front of it. BCC rewrites map calls (m.lookup()) only
    in the file it compiles, not in included headers, so lmp.h's helpers must be part of that file;
    `#line` keeps compiler errors pointing at the collector's own file and line."""
    header = (LIB_DIR / "lmp.h").read_text()
    return f'{header}\n#line 1 "{spec.source}"\n{spec.source.read_text()}'


def load(spec: Spec, values: dict[str, bool | int]) -> Loaded:
    """Compile spec.source with BCC, attach its TRACEPOINT_PROBE/RAW_TRACEPOINT_PROBE handlers."""
    from bcc import BPF  # imported here: BCC's import alone costs ~10 MB and 100 ms

    started = time.monotonic()
    flags = cflags(spec, values)  # may raise LoadError (BTF)
    try:
        bpf = BPF(text=source(spec), cflags=flags)
    except Exception as err:  # BCC raises plain Exception for compile and attach failures
        raise LoadError(f"{spec.name}: BCC could not compile or attach {spec.source.name}: {err}") from None
    _, maps = spec.active(values)
    try:
        programs = {hook: load_program(bpf, hook, function) for hook, function in spec.programs.items()}
    except Exception as err:  # the verifier refused it; BCC prints its log to stderr
        bpf.cleanup()
        raise LoadError(f"{spec.name}: the kernel refused a program of {spec.source.name}: {err}") from None
    loaded = Loaded(bpf, maps, time.monotonic() - started, (*spec.tracepoints, *spec.raw_tracepoints),
                    programs=programs)
    give_back_memory()
    return loaded


def load_program(bpf: Any, hook: str, function: str) -> int:
    """Load a function component's program (attached later, through a link, to the rules' targets): XDP, or
    a cgroup sock_addr program, whose attach type the kernel needs at load time. Returns its fd."""
    from bcc import BPF
    if hook == "xdp":
        return bpf.load_func(function.encode(), BPF.XDP).fd
    return bpf.load_func(function.encode(), BPF.CGROUP_SOCK_ADDR, attach_type=ATTACH_TYPES[hook]).fd
