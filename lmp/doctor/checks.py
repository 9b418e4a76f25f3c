"""The checks of `lmp doctor`, each a question about this host answered by looking at it."""
from __future__ import annotations

import ctypes
import errno
import gzip
import os
import platform
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SYS_BPF, BPF_PROG_GET_NEXT_ID = 321, 11  # x86_64's bpf() syscall number and the command that lists programs
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


@dataclass
class Check:
    name: str
    ok: bool | None  # None: could not tell
    found: str
    advice: str = ""


def kernel_config() -> tuple[dict[str, str], str]:
    """The running kernel's build config (CONFIG_X -> y, m, n or a value) and where it was read."""
    for path in (Path("/proc/config.gz"), Path(f"/boot/config-{platform.release()}")):
        try:
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        except OSError:
            continue
        options = dict(re.findall(r"^(CONFIG_\w+)=(.*)$", raw.decode(errors="replace"), re.M))
        options |= {k: "n" for k in re.findall(r"^# (CONFIG_\w+) is not set$", raw.decode(errors="replace"), re.M)}
        return options, str(path)
    return {}, ""


def says(config: dict[str, str], key: str) -> str:
    return f"{key}={config[key]}" if key in config else f"{key} unknown (no build config)"


def mounts() -> dict[str, str]:
    """Mount point -> file system type, from /proc/self/mountinfo."""
    found = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, rest = line.partition(" - ")
        found[fields.split()[4]] = rest.split()[0]
    return found


def privileges() -> Check:
    caps = int(next(l.split()[1] for l in Path("/proc/self/status").read_text().splitlines()
                    if l.startswith("CapEff:")), 16)
    has = {name: bool(caps >> bit & 1) for name, bit in
           (("CAP_SYS_ADMIN", CAP_SYS_ADMIN), ("CAP_BPF", CAP_BPF), ("CAP_PERFMON", CAP_PERFMON))}
    ok = has["CAP_SYS_ADMIN"] or (has["CAP_BPF"] and has["CAP_PERFMON"])
    return Check("privileges", ok, f"uid {os.geteuid()}, " + ", ".join(k for k, v in has.items() if v),
                 "run LMP as root (sudo), or give it CAP_BPF and CAP_PERFMON")


def bpf_syscall() -> Check:
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 4)()  # start_id 0: "the first program", an answer any BPF kernel gives
    libc.syscall(SYS_BPF, BPF_PROG_GET_NEXT_ID, attr, ctypes.sizeof(attr))
    code = ctypes.get_errno()
    ok = code in (0, errno.ENOENT)  # ENOENT: no program loaded yet, but bpf() answered
    found = "bpf() answers" if ok else f"bpf() fails: {os.strerror(code)}"
    return Check("bpf syscall", ok, found, "the kernel needs CONFIG_BPF_SYSCALL=y, and LMP needs root")


def pseudo_filesystems() -> list[Check]:
    found = mounts()
    wanted = [("tracefs", "tracefs", "/sys/kernel/tracing"), ("debugfs", "debugfs", "/sys/kernel/debug"),
              ("bpffs", "bpf", "/sys/fs/bpf")]
    return [Check(f"{name} mounted", found.get(where) == fstype, f"{where}: {found.get(where, 'not mounted')}",
                  f"mount -t {fstype} {fstype} {where} (scripts/install.sh does it)")
            for name, fstype, where in wanted]


def tracepoints(config: dict[str, str]) -> Check:
    events = Path("/sys/kernel/tracing/events")
    count = sum(1 for _ in events.glob("*/*/format")) if events.is_dir() else 0
    syscalls = (events / "raw_syscalls" / "sys_exit").is_dir()
    return Check("tracepoints", count > 0 and syscalls, f"{count} tracepoints; raw_syscalls "
                 f"{'present' if syscalls else 'missing'}; {says(config, 'CONFIG_FTRACE_SYSCALLS')}",
                 "mount tracefs; syscall tracepoints need CONFIG_FTRACE_SYSCALLS=y")


def btf(config: dict[str, str]) -> Check:
    path = Path("/sys/kernel/btf/vmlinux")
    size = path.stat().st_size if path.exists() else 0
    return Check("BTF", size > 0, f"{path}: {size >> 10} KiB" if size else f"no {path}; "
                 f"{says(config, 'CONFIG_DEBUG_INFO_BTF')}",
                 "LMP's collectors are CO-RE objects: libbpf fits them to this kernel with its BTF. Give a BTF "
                 "file of this kernel with `lmp exporter --btf PATH` or btf_path in the config (BTFHub has "
                 "them for most distribution kernels); tp_btf programs need the kernel's own BTF")


def headers() -> Check:
    build = Path(f"/lib/modules/{platform.release()}/build")
    uts = build / "include" / "generated" / "utsrelease.h"
    if not (build / "include").exists():
        return Check("kernel headers", False, f"none at {os.path.realpath(build)}",
                     "only `lmp scenario` needs them (its recorder compiles with BCC); it links Debian's "
                     "newest when it runs; the collectors need none")
    match = re.search(r'UTS_RELEASE "([^"]+)"', uts.read_text()) if uts.exists() else None
    version = match.group(1) if match else "unknown"
    same = version == platform.release()
    return Check("kernel headers", same, f"{os.path.realpath(build)}: {version}" +
                 ("" if same else f", not {platform.release()}"),
                 "they do not match this kernel: only `lmp scenario`'s recorder (BCC) uses them, for "
                 "tracepoint arguments; code of your own must not read kernel structs through these headers")


def cgroups() -> Check:
    found = mounts()
    v2 = [where for where, fstype in found.items() if fstype == "cgroup2"]
    v1 = [where for where, fstype in found.items() if fstype == "cgroup"]
    layout = "v2 (unified)" if v2 and not v1 else "hybrid (v1 controllers, v2 at " + ", ".join(v2) + ")" \
        if v2 else "v1 (legacy) only" if v1 else "none mounted"
    return Check("cgroups", bool(v2), layout, "cgroup labels and connguard need the cgroup v2 hierarchy")


PROBES = HERE / "probes.bpf.o"  # built from probes.bpf.c by `lmp build`
PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK, SYS_PERF_EVENT_OPEN = 1, 0, 298  # x86_64's perf_event_open()
MAP_TYPE_RINGBUF = 27


def probe(program: str, attach: Callable[[int], int] | None = None) -> str:
    """Load one of probes.bpf.o's programs alone and attach it (by its section, or with `attach`); '' when
    the kernel takes both, else its reason in a few words."""
    from exporters._lib import libbpf

    obj = 0
    try:
        with libbpf.Messages():
            obj = libbpf.open_file(PROBES)
            for prog in libbpf.programs(obj):
                libbpf.set_autoload(prog, libbpf.name(prog) == program)
            libbpf.load(obj)
            prog = next(p for p in libbpf.programs(obj) if libbpf.name(p) == program)
            libbpf.destroy_link(attach(prog) if attach else libbpf.attach(prog))
        return ""
    except OSError as err:
        return err.strerror or str(err)
    finally:
        if obj:
            libbpf.close(obj)


def perf_event() -> int:
    """A software cpu-clock event on CPU 0, sampling once a second: its fd (the caller closes it)."""
    attr = ctypes.create_string_buffer(128)  # struct perf_event_attr
    struct.pack_into("IIQQ", attr, 0, PERF_TYPE_SOFTWARE, len(attr), PERF_COUNT_SW_CPU_CLOCK, 1)
    struct.pack_into("Q", attr, 40, 1 << 10)  # flags: freq
    fd = ctypes.CDLL(None, use_errno=True).syscall(SYS_PERF_EVENT_OPEN, attr, -1, 0, -1, 0)
    if fd < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return fd


def libc_path() -> str:
    """The C library this process maps: where the doctor's uprobe goes."""
    return next(line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()
                if re.search(r"/libc[.-][^/]*\.so|/libc\.so", line))


def attach_perf(prog: int) -> int:
    from exporters._lib import libbpf
    fd = perf_event()
    try:
        return libbpf.attach_perf_event(prog, fd)  # the link holds the event
    finally:
        os.close(fd)


def program_probes(config: dict[str, str]) -> list[Check]:
    """Load LMP's probe programs one at a time with libbpf and attach them: what tracepoints of each kind,
    kprobes, uprobes, perf events, ring buffers and fentry really do here."""
    from exporters._lib import libbpf

    if not PROBES.is_file():
        return [Check("probe programs", False, f"no {PROBES}", "build it: lmp build (needs clang)")]
    checks = [Check("ring buffer", libbpf.map_type_supported(MAP_TYPE_RINGBUF),
                    "BPF_MAP_TYPE_RINGBUF supported" if libbpf.map_type_supported(MAP_TYPE_RINGBUF)
                    else "no BPF_MAP_TYPE_RINGBUF", "ring buffers need Linux 5.8: connguard's events and "
                    "lmp scenario use them")]
    for name, program, advice in (
            ("tracepoints (tp)", "doctor_tp", "classic tracepoint programs: fileio and the resets of tcp"),
            ("raw tracepoints", "doctor_raw_tp", "kernel 4.17 or newer"),
            ("BTF tracepoints", "doctor_tp_btf", "tp_btf programs (most collectors) need Linux 5.5 and the "
                                                 "kernel's own BTF")):
        why = probe(program)
        checks.append(Check(name, not why, why or "loaded and attached on sys_exit", advice))
    kprobe = probe("doctor_kprobe")
    if kprobe and not Path("/sys/bus/event_source/devices/kprobe").exists():
        kprobe = "no kprobe event source (/sys/bus/event_source/devices/kprobe): this kernel has no kprobes"
    checks.append(Check("kprobes", not kprobe, kprobe or "attached to do_sys_openat2",
                        f"{says(config, 'CONFIG_KPROBES')}: bcc's kprobe tools (execsnoop, biolatency, "
                        f"offcputime) fail here; LMP's collectors use tracepoints only"))
    uprobe = probe("doctor_uprobe", lambda prog: libbpf.attach_uprobe(prog, libc_path(), "getpid"))
    checks.append(Check("uprobes", not uprobe, uprobe or "attached to libc's getpid",
                        f"{says(config, 'CONFIG_UPROBE_EVENTS')}: lmp scenario --uprobe and the l7 "
                        f"collector's TLS requests (OpenSSL's SSL_read/SSL_write) need them"))
    uretprobe = probe("doctor_uprobe", lambda prog: libbpf.attach_uprobe(prog, libc_path(), "getpid", retprobe=True))
    checks.append(Check("uretprobes", not uretprobe, uretprobe or "attached to the return of libc's getpid",
                        "the l7 collector reads SSL_read's plaintext when it returns"))
    perf = probe("doctor_perf", attach_perf)
    checks.append(Check("perf events", not perf, perf or "sampling on cpu-clock",
                        "on-CPU stack samples (lmp scenario) need CONFIG_PERF_EVENTS and perf_event_paranoid"))
    fentry = probe("doctor_fentry")
    if fentry.endswith("Operation not permitted"):
        fentry = "the kernel refused to load it (EPERM), though LMP runs as root"
    checks.append(Check("fentry", not fentry, fentry or "loaded on do_sys_openat2",
                        "fentry programs are refused here (a kernel option or a security policy): LMP does "
                        "not need them"))
    return checks


def bcc() -> Check:
    """BCC, which only `lmp scenario`'s recorder still uses (it compiles its programs at each run)."""
    try:
        import bcc as found
    except ImportError as err:
        return Check("BCC", False, f"cannot import bcc: {err}", "lmp scenario needs it: apt-get install python3-bpfcc")
    return Check("BCC", True, f"version {found.__version__}")


def all_checks() -> list[Check]:
    config, source = kernel_config()
    kernel = Check("kernel", True, f"{platform.release()}; build config {source or 'not available'}")
    return [kernel, privileges(), bpf_syscall(), *pseudo_filesystems(), tracepoints(config), btf(config),
            cgroups(), *program_probes(config), bcc(), headers()]
