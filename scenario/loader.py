"""Compiling and attaching the scenario recorder's kernel code (scenario/bpf/*.bpf.c) with BCC.

The code is one BCC program made of several files: core.bpf.c (maps, helpers) and sched.bpf.c (time
accounting, process events) always, then one file per chosen event family. BCC rewrites map calls only
in the text it compiles, so the files are concatenated behind bcc.h, each behind a #line that keeps
compiler errors pointing at its own file and line. The recorder still compiles at each run (around its
target and the families asked for), so it alone needs BCC and kernel headers; the few struct fields it
reads are at offsets taken from the running kernel's BTF, as libbpf reads it."""
from __future__ import annotations

import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporters._lib import bpf as lmpbpf
from exporters._lib import btf, libbpf

BPF_DIR = Path(__file__).resolve().parent / "bpf"
# The application protocols' parsers, shared with the l7 collector: put in front of requests.bpf.c.
L7_PROTOCOLS = Path(__file__).resolve().parent.parent / "exporters" / "l7" / "protocols.h"
ALWAYS = ("core", "sched")
# family: (its file or None, the tracepoints it needs). offcpu only turns on sched.bpf.c's events.
FAMILIES: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "syscalls": ("syscalls", ("raw_syscalls:sys_enter", "raw_syscalls:sys_exit")),
    "offcpu": (None, ()),
    "faults": ("faults", ("exceptions:page_fault_user", "exceptions:page_fault_kernel")),
    "block": ("block", ("block:block_io_start", "block:block_rq_issue", "block:block_rq_complete")),
    "tcp": ("tcp", ("sock:inet_sock_set_state", "tcp:tcp_retransmit_skb", "tcp:tcp_send_reset",
                    "tcp:tcp_receive_reset")),
    "signals": ("signals", ("signal:signal_generate", "signal:signal_deliver")),
    "samples": ("samples", ()),
    "requests": ("requests", ("raw_syscalls:sys_enter", "raw_syscalls:sys_exit")),
}
CORE_TRACEPOINTS = ("sched:sched_switch", "sched:sched_wakeup", "sched:sched_wakeup_new",
                    "sched:sched_process_fork", "sched:sched_process_exec", "sched:sched_process_exit")
# Maps whose inserts can fail when full: each gets an overflow slot in lmp.h's lmp_overflow.
OVERFLOW_MAPS = ("threads", "offcpu_stacks", "oncpu_stacks", "requests", "calls", "l7_conns")
BTF_FIELDS = ("task_struct.pid", "task_struct.tgid", "task_struct.exit_code", "pt_regs.di", "pt_regs.si",
              "pt_regs.dx")
# requests.bpf.c follows an fd to its socket through the task's file table.
SOCKET_FIELDS = ("task_struct.files", "files_struct.fdt", "fdtable.fd", "fdtable.max_fds", "file.f_inode",
                 "inode.i_mode", "file.private_data", "socket.sk", "socket.type", "sock_common.skc_family",
                 "sock_common.skc_num", "sock_common.skc_dport")
# Attached by the loader, not by BCC: syscalls.bpf.c holds BCC's own raw sys_enter and sys_exit.
RAW_PROGRAMS = {"requests": (("l7_sys_enter", "sys_enter"), ("l7_sys_exit", "sys_exit"))}
MAX_UPROBES = 8
PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK = 1, 0


def kernel_offsets(fields: tuple[str, ...]) -> dict[str, int]:
    """Byte offsets of struct fields ("task_struct.exit_code") in the running kernel, from its BTF (through
    libbpf): the headers BCC compiles with may not match the kernel, so a struct read through them returns
    garbage. Fields inside anonymous members are found too. LoadError names a field the kernel lacks."""
    if (why := lmpbpf.btf_missing()) is not None:
        raise lmpbpf.LoadError(why)
    types = btf.Types(libbpf.parse_btf(lmpbpf.VMLINUX_BTF))
    found = {}
    for wanted in fields:
        struct, member = wanted.split(".")
        try:
            found[wanted] = types.struct(struct).fields[member].offset
        except KeyError:
            raise lmpbpf.LoadError(f"the kernel's BTF has no {wanted}") from None
    return found


def kernel_headers(modules: Path = Path("/lib/modules")) -> None:
    """BCC compiles with the running kernel's headers, from /lib/modules/$(uname -r)/build. A kernel without
    them (this VM's 6.18 has only Debian's 6.1 ones) gets Debian's newest linked there, or, in a container,
    the host's own when it has them (mounted at /host/lib/modules). The recorder reads tracepoint
    arguments and BTF offsets only, so headers of another version serve."""
    release = platform.release()
    kdir = modules / release
    if (kdir / "build" / "include").exists():
        return
    host = Path("/host/lib/modules") / release
    if (host / "build" / "include").exists():
        build, source = host / "build", host / "source"
    else:
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        found = sorted(Path("/usr/src").glob(f"linux-headers-*-{arch}"), key=lambda p: _version(p.name))
        if not found:
            raise lmpbpf.LoadError(f"no kernel headers for BCC: none at {kdir}/build and no linux-headers-*-{arch} "
                                   f"in /usr/src (apt-get install linux-headers-{arch})")
        build = found[-1]
        commons = sorted(Path("/usr/src").glob("linux-headers-*-common"), key=lambda p: _version(p.name))
        source = commons[-1] if commons else build
    kdir.mkdir(parents=True, exist_ok=True)
    for name, target in (("build", build), ("source", source)):
        (kdir / name).unlink(missing_ok=True)
        (kdir / name).symlink_to(target)
    print(f"lmp scenario: kernel {release} has no headers: linked {kdir / 'build'} -> {build} for BCC "
          f"(tracepoint arguments only)", file=sys.stderr)


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", name))


@dataclass
class Uprobe:
    """--uprobe LIBRARY:SYMBOL: a library as the dynamic loader names it (libc, c, libssl) or a path."""
    library: str
    symbol: str

    @classmethod
    def parse(cls, text: str) -> "Uprobe":
        library, sep, symbol = text.rpartition(":")
        if not sep or not library or not symbol:
            raise ValueError(f"--uprobe {text!r}: expected LIBRARY:SYMBOL, e.g. libc:malloc or /usr/bin/prog:main")
        return cls(library, symbol)

    @property
    def bcc_name(self) -> str:
        """BCC finds "c" (not "libc") through the loader's cache; a path is used as it is."""
        if "/" in self.library:
            return self.library
        return self.library.removeprefix("lib").split(".so")[0]

    def __str__(self) -> str:
        return f"{self.library}:{self.symbol}"


@dataclass
class Program:
    families: tuple[str, ...]
    children: bool = False
    uprobes: tuple[Uprobe, ...] = ()
    frequency: int = 99
    ring_pages: int = 2048
    root_pid: int = -1  # uprobes attach to this process only, unless children are followed
    bpf: Any = None
    attached: list[str] = field(default_factory=list)
    raw_links: list[int] = field(default_factory=list)  # fds of the raw tracepoints attached here

    def files(self) -> list[str]:
        wanted = [FAMILIES[f][0] for f in self.families if FAMILIES[f][0]]
        return [*ALWAYS, *(f for f in wanted if f), *(["uprobes"] if self.uprobes else [])]

    def text(self) -> str:
        parts = [(BPF_DIR / "bcc.h").read_text()]
        for name in self.files():
            path = BPF_DIR / f"{name}.bpf.c"
            if name == "requests":  # its parsers, inlined: BCC relocates no calls
                parts.append(f'#define L7_PARSER static __always_inline\n#define L7_SUBPROG __always_inline\n'
                             f'#line 1 "{L7_PROTOCOLS}"\n'
                             f'{L7_PROTOCOLS.read_text()}')
            parts.append(f'#line 1 "{path}"\n{path.read_text()}')
        return "\n".join(parts)

    def cflags(self) -> list[str]:
        flags = [f"-DLMP_MAX_MAPS={len(OVERFLOW_MAPS)}",
                 *(f"-DLMP_MAP_{name}={i}" for i, name in enumerate(OVERFLOW_MAPS)),
                 f"-DFOLLOW_CHILDREN={int(self.children)}", f"-DOFFCPU={int('offcpu' in self.families)}",
                 f"-DRING_PAGES={self.ring_pages}"]
        fields = BTF_FIELDS + (SOCKET_FIELDS if "requests" in self.families else ())
        flags += [f"-DBTF_{f.replace('.', '_')}={off}" for f, off in kernel_offsets(fields).items()]
        return flags

    def missing(self) -> list[str]:
        events = lmpbpf.TRACEFS / "events"
        if not events.is_dir():
            raise lmpbpf.LoadError(f"tracefs is not mounted at {lmpbpf.TRACEFS}")
        hooks = [*CORE_TRACEPOINTS, *(tp for f in self.families for tp in FAMILIES[f][1])]
        return [tp for tp in hooks if not (events / tp.replace(":", "/")).is_dir()]

    def load(self) -> Any:
        """Compile and attach everything; LoadError says what failed."""
        from bcc import BPF  # ~100 ms and 10 MB: only once a run is certain

        if len(self.uprobes) > MAX_UPROBES:
            raise lmpbpf.LoadError(f"at most {MAX_UPROBES} --uprobe")
        missing = self.missing()
        if missing:
            raise lmpbpf.LoadError(f"this kernel lacks the tracepoint(s) {', '.join(missing)}; "
                                   f"leave their family out of --events")
        kernel_headers()
        try:
            self.bpf = BPF(text=self.text(), cflags=self.cflags())
        except Exception as err:  # BCC raises plain Exception for compile and attach failures
            raise lmpbpf.LoadError(f"BCC could not compile or attach the scenario recorder: {err}") from None
        try:
            self._attach_more()
        except Exception:
            self._close_raw()
            self.bpf.cleanup()
            raise
        return self.bpf

    def _attach_more(self) -> None:
        """What BCC does not attach by itself: the perf sampling event, raw tracepoints a second program of
        the same hook needs, and the uprobes."""
        from bcc import BPF, lib

        for family, programs in RAW_PROGRAMS.items():
            for fn_name, tp in programs if family in self.families else ():
                fd = lib.bpf_attach_raw_tracepoint(self.bpf.load_func(fn_name.encode(), BPF.RAW_TRACEPOINT).fd,
                                                   tp.encode())
                if fd < 0:
                    raise lmpbpf.LoadError(f"could not attach {fn_name} to the raw tracepoint {tp}")
                self.raw_links.append(fd)
        if "samples" in self.families:
            self.bpf.attach_perf_event(ev_type=PERF_TYPE_SOFTWARE, ev_config=PERF_COUNT_SW_CPU_CLOCK,
                                       fn_name=b"on_cpu_sample", sample_freq=self.frequency, cpu=-1)
        # Bound to the root process the probe costs nothing elsewhere; children need it everywhere.
        pid = -1 if self.children else self.root_pid
        for i, probe in enumerate(self.uprobes):
            try:
                self.bpf.attach_uprobe(name=probe.bcc_name.encode(), sym=probe.symbol.encode(),
                                       fn_name=f"uprobe_{i}".encode(), pid=pid)
                self.bpf.attach_uretprobe(name=probe.bcc_name.encode(), sym=probe.symbol.encode(),
                                          fn_name=f"uretprobe_{i}".encode(), pid=pid)
            except Exception as err:
                raise lmpbpf.LoadError(f"--uprobe {probe}: {err}") from None

    def detach(self) -> None:
        """Detach every program but keep the maps, so that they can still be read."""
        b = self.bpf
        for tp in list(b.tracepoint_fds):
            b.detach_tracepoint(tp)
        for tp in list(b.raw_tracepoint_fds):
            b.detach_raw_tracepoint(tp)
        self._close_raw()
        for ev_type, ev_config in list(b.open_perf_events):
            b.detach_perf_event(ev_type, ev_config)
        for name in list(b.uprobe_fds):
            b.detach_uprobe_event(name)

    def _close_raw(self) -> None:
        while self.raw_links:
            os.close(self.raw_links.pop())

    def close(self) -> None:
        self._close_raw()
        if self.bpf is not None:
            self.bpf.cleanup()
            self.bpf = None
