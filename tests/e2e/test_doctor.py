"""`lmp doctor` against facts this test measures itself, by other means than the doctor's own.

Where the doctor asks BCC, the test asks the kernel directly (the bpf() and perf_event_open() syscalls
through ctypes, bpftool, tracefs files, /proc/mounts, dpkg), so a doctor that reads the wrong thing fails."""
from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from exporters._lib import catalog, paths

TRACING = Path("/sys/kernel/tracing")
SYS_BPF, SYS_PERF_EVENT_OPEN = 321, 298  # x86_64
BPF_PROG_LOAD = 5
BPF_PROG_TYPE_TRACEPOINT, BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, BPF_TRACE_FENTRY = 5, 26, 23, 24
RETURN_ZERO = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])  # r0 = 0; exit


@pytest.fixture(scope="module")
def doctor() -> dict:
    out = subprocess.run([sys.executable, "-m", "lmp", "doctor", "--json"], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    return json.loads(out)


def check(doctor: dict, name: str) -> dict:
    return next(c for c in doctor["checks"] if c["name"] == name)


def load_program(prog_type: int, attach_type: int = 0, attach_btf_id: int = 0) -> int:
    """bpf(BPF_PROG_LOAD) of `return 0`: 0 when the kernel takes it (the fd is closed), else the errno."""
    libc = ctypes.CDLL(None, use_errno=True)
    insns = ctypes.create_string_buffer(RETURN_ZERO, len(RETURN_ZERO))
    license = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(128)  # union bpf_attr, its BPF_PROG_LOAD fields (uapi/linux/bpf.h)
    struct.pack_into("IIQQ", attr, 0, prog_type, len(RETURN_ZERO) // 8, ctypes.addressof(insns),
                     ctypes.addressof(license))
    struct.pack_into("I", attr, 68, attach_type)  # expected_attach_type
    struct.pack_into("I", attr, 108, attach_btf_id)
    fd = libc.syscall(SYS_BPF, BPF_PROG_LOAD, attr, ctypes.sizeof(attr))
    if fd < 0:
        return ctypes.get_errno()
    os.close(fd)
    return 0


def btf_id(kind: str, name: str) -> int:
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"], check=True,
                         capture_output=True, text=True).stdout
    return int(re.search(rf"^\[(\d+)\] {kind} '{name}'", out, re.M).group(1))


def test_the_kernel_is_the_running_one(doctor):
    assert doctor["kernel"] == subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    assert doctor["machine"] == os.uname().machine


def test_kprobes_and_uprobes_as_tracefs_offers_them(doctor):
    # The kernel creates kprobe_events and uprobe_events in tracefs only when it was built with them.
    assert check(doctor, "kprobes")["ok"] == (TRACING / "kprobe_events").exists()
    assert check(doctor, "uprobes")["ok"] == (TRACING / "uprobe_events").exists()
    assert check(doctor, "uretprobes")["ok"] == (TRACING / "uprobe_events").exists()
    if not check(doctor, "kprobes")["ok"]:
        assert "CONFIG_KPROBES" in check(doctor, "kprobes")["advice"]


def test_fentry_as_the_bpf_syscall_answers(doctor):
    """Load `return 0` as fentry on do_sys_openat2 with the raw syscall. The controls go through the same
    loader: a tracepoint program, and a BTF tracepoint (tp_btf), which is the same program type as fentry
    and also names its target by BTF id; so a refusal is the kernel's, and fentry's alone."""
    assert load_program(BPF_PROG_TYPE_TRACEPOINT) == 0
    assert load_program(BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP, btf_id("TYPEDEF", "btf_trace_sched_switch")) == 0
    refused = load_program(BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, btf_id("FUNC", "do_sys_openat2"))
    assert check(doctor, "fentry")["ok"] == (refused == 0)
    if refused == errno.EPERM:
        assert "EPERM" in check(doctor, "fentry")["found"]


def test_perf_events_as_perf_event_open_answers(doctor):
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(128)  # struct perf_event_attr: type SOFTWARE, config CPU_CLOCK
    struct.pack_into("II", attr, 0, 1, len(attr))
    fd = libc.syscall(SYS_PERF_EVENT_OPEN, attr, -1, 0, -1, 0)  # every process, on CPU 0, as the doctor samples
    if fd >= 0:
        os.close(fd)
    assert check(doctor, "perf events")["ok"] == (fd >= 0)


def test_ring_buffers_as_bpftool_creates_one(doctor, tmp_path):
    pin = Path(f"/sys/fs/bpf/lmp-doctor-test-{os.getpid()}")
    made = subprocess.run(["bpftool", "map", "create", str(pin), "type", "ringbuf", "key", "0", "value", "0",
                           "entries", "4096", "name", "doctor_test"], capture_output=True).returncode == 0
    pin.unlink(missing_ok=True)
    assert check(doctor, "ring buffer")["ok"] == made


def test_btf_tracepoints_and_mounts(doctor):
    vmlinux = Path("/sys/kernel/btf/vmlinux")
    assert check(doctor, "BTF")["ok"] == vmlinux.exists()
    assert f"{vmlinux.stat().st_size >> 10} KiB" in check(doctor, "BTF")["found"]
    listed = (TRACING / "available_events").read_text().splitlines()
    found = check(doctor, "tracepoints")
    assert found["ok"] == ("raw_syscalls:sys_exit" in listed)
    assert int(found["found"].split()[0]) >= len(listed)  # tracefs also has formats of ftrace's own events
    mounted = {fields[1]: fields[2] for fields in (l.split() for l in Path("/proc/mounts").read_text().splitlines())}
    for name, fstype, where in (("tracefs", "tracefs", "/sys/kernel/tracing"),
                                ("debugfs", "debugfs", "/sys/kernel/debug"), ("bpffs", "bpf", "/sys/fs/bpf")):
        assert check(doctor, f"{name} mounted")["ok"] == (mounted.get(where) == fstype), name


def test_the_cgroup_layout_from_proc_mounts(doctor):
    types = [l.split()[2] for l in Path("/proc/mounts").read_text().splitlines()]
    v1, v2 = "cgroup" in types, "cgroup2" in types
    layout = check(doctor, "cgroups")["found"]
    assert layout.startswith("hybrid" if v1 and v2 else "v2" if v2 else "v1" if v1 else "none")
    if v2:
        v2_at = [l.split()[1] for l in Path("/proc/mounts").read_text().splitlines() if l.split()[2] == "cgroup2"]
        assert all(where in layout for where in v2_at) or not v1


def test_headers_match_only_when_their_package_is_this_kernels(doctor):
    build = os.path.realpath(f"/lib/modules/{os.uname().release}/build")
    owner = subprocess.run(["dpkg", "-S", build], capture_output=True, text=True).stdout.split(":")[0]
    headers = check(doctor, "kernel headers")
    assert headers["ok"] == (owner == f"linux-headers-{os.uname().release}"), (owner, headers)
    assert build in headers["found"]
    if not headers["ok"]:
        assert "must not read kernel structs" in headers["advice"]


def test_bcc_version_is_debians(doctor):
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-bpfcc"], capture_output=True,
                             text=True).stdout
    assert check(doctor, "BCC")["found"] == f"version {version.split('+')[0]}"


def test_every_component_and_the_hooks_it_needs(doctor):
    """A component runs here when its tracepoints are all in tracefs; the doctor lists every one."""
    listed = set((TRACING / "available_events").read_text().splitlines())
    rows = {r["name"]: r for r in doctor["components"]}
    assert set(rows) == set(catalog.names())
    for name, row in rows.items():
        tracepoints = [h for h in row["hooks"] if ":" in h and "/" not in h]
        if all(tp in listed for tp in tracepoints):
            continue
        assert not row["can_run"] and row["why_not"], name
    assert all(r["can_run"] == (r["why_not"] == "") for r in rows.values())


def test_the_table_names_every_check_and_component():
    out = subprocess.run([sys.executable, "-m", "lmp", "doctor"], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    for name in ("kprobes", "fentry", "BTF", "kernel headers", "cgroups", *catalog.names()):
        assert re.search(rf"^{re.escape(name)}\s", out, re.M), name
    assert re.search(r"^\d+ of \d+ components can run here\.$", out, re.M)


def test_not_root_is_told_to_use_sudo():
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-m", "lmp", "doctor"], capture_output=True, text=True, cwd="/",
                          env={**os.environ, "PYTHONPATH": str(paths.ROOT)})
    assert done.returncode == 2
    assert "sudo lmp doctor" in done.stderr
