"""The checks of `lmp doctor`, each a question about this host answered by looking at it."""
from __future__ import annotations

import ctypes
import errno
import gzip
import os
import platform
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@contextmanager
def quiet() -> Iterator[None]:
    """BCC prints its compiler's and the kernel's complaints on stderr: keep them out of the report."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def attempt(action: Callable[[], Any]) -> str:
    """'' when the action works, else the kernel's or BCC's reason, in a few words."""
    try:
        with quiet():
            action()
        return ""
    except Exception as err:  # BCC raises plain Exception for every refusal
        return str(err).strip().splitlines()[0][:160] or type(err).__name__


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
                 "collectors that read kernel structs (process, oomkill) need CONFIG_DEBUG_INFO_BTF=y")


def headers() -> Check:
    build = Path(f"/lib/modules/{platform.release()}/build")
    uts = build / "include" / "generated" / "utsrelease.h"
    if not (build / "include").exists():
        return Check("kernel headers", False, f"none at {build}",
                     "BCC needs headers even for tracepoints: scripts/install.sh links Debian's")
    match = re.search(r'UTS_RELEASE "([^"]+)"', uts.read_text()) if uts.exists() else None
    version = match.group(1) if match else "unknown"
    same = version == platform.release()
    return Check("kernel headers", same, f"{os.path.realpath(build)}: {version}" +
                 ("" if same else f", not {platform.release()}"),
                 "they do not match this kernel: LMP reads only tracepoint arguments and BTF offsets, so it "
                 "works; code of your own must not read kernel structs through these headers")


def cgroups() -> Check:
    found = mounts()
    v2 = [where for where, fstype in found.items() if fstype == "cgroup2"]
    v1 = [where for where, fstype in found.items() if fstype == "cgroup"]
    layout = "v2 (unified)" if v2 and not v1 else "hybrid (v1 controllers, v2 at " + ", ".join(v2) + ")" \
        if v2 else "v1 (legacy) only" if v1 else "none mounted"
    return Check("cgroups", bool(v2), layout, "cgroup labels and connguard need the cgroup v2 hierarchy")


def bcc_probes(config: dict[str, str]) -> list[Check]:
    """Load LMP's probe programs with BCC and attach them: what kprobes, uprobes, perf events, ring buffers,
    raw tracepoints and fentry really do here."""
    try:
        import bcc
        from bcc import BPF, PerfSWConfig, PerfType
    except ImportError as err:
        return [Check("BCC", False, f"cannot import bcc: {err}", "apt-get install python3-bpfcc")]
    checks = [Check("BCC", True, f"version {bcc.__version__}")]
    probes: list[Any] = []
    why = attempt(lambda: probes.append(BPF(src_file=str(HERE / "probes.bpf.c"))))
    if why:
        return [*checks, Check("BCC compiles", False, why, "install the kernel headers (scripts/install.sh)")]
    b = probes[0]
    checks.append(Check("ring buffer", True, "BPF_MAP_TYPE_RINGBUF created"))
    kprobe = attempt(lambda: b.attach_kprobe(event="do_sys_openat2", fn_name="doctor_kprobe"))
    if kprobe and not Path("/sys/bus/event_source/devices/kprobe").exists():  # BCC's own words mislead here
        kprobe = "no kprobe event source (/sys/bus/event_source/devices/kprobe): this kernel has no kprobes"
    checks.append(Check("kprobes", not kprobe, kprobe or "attached to do_sys_openat2",
                        f"{says(config, 'CONFIG_KPROBES')}: bcc's kprobe tools (execsnoop, biolatency, "
                        f"offcputime) fail here; LMP's collectors use tracepoints only"))
    uprobe = attempt(lambda: b.attach_uprobe(name="c", sym="getpid", fn_name="doctor_uprobe"))
    checks.append(Check("uprobes", not uprobe, uprobe or "attached to libc's getpid",
                        f"{says(config, 'CONFIG_UPROBE_EVENTS')}: lmp scenario --uprobe needs them"))
    perf = attempt(lambda: b.attach_perf_event(ev_type=PerfType.SOFTWARE, ev_config=PerfSWConfig.CPU_CLOCK,
                                               fn_name="doctor_perf", sample_freq=1, cpu=0))
    checks.append(Check("perf events", not perf, perf or "sampling on cpu-clock",
                        "on-CPU stack samples (lmp scenario) need CONFIG_PERF_EVENTS and perf_event_paranoid"))
    checks.append(Check("raw tracepoints", bool(BPF.support_raw_tracepoint()), "supported"
                        if BPF.support_raw_tracepoint() else "not supported", "kernel 4.17 or newer"))
    with quiet():
        b.cleanup()
    fentry = attempt(lambda: BPF(src_file=str(HERE / "fentry.bpf.c")).cleanup())
    if "super-user" in fentry:  # BCC's words for EPERM, though this is root
        fentry = "the kernel refused to load it (EPERM), though LMP runs as root"
    checks.append(Check("fentry", not fentry, fentry or "loaded on do_sys_openat2",
                        "fentry programs are refused here (a kernel option or a security policy): LMP does "
                        "not need them"))
    return checks


def all_checks() -> list[Check]:
    config, source = kernel_config()
    kernel = Check("kernel", True, f"{platform.release()}; build config {source or 'not available'}")
    return [kernel, privileges(), bpf_syscall(), *pseudo_filesystems(), tracepoints(config), btf(config),
            headers(), cgroups(), *bcc_probes(config)]
