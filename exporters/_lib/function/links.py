"""BPF links: attaching a function component's programs so that they cannot outlive their process.

A link (BPF_LINK_CREATE, XDP since Linux 5.9, cgroup hooks since 5.7) is a file descriptor; the kernel
detaches the program when the last descriptor of it closes, which a process's death does whatever kills
it (SIGKILL, a crash). BCC 0.26's attach_xdp uses netlink and attach_func uses BPF_PROG_ATTACH, and both
stay attached after the process is gone, so neither is used. The calls are made with the bpf() syscall
through ctypes: four u32 fields of union bpf_attr (include/uapi/linux/bpf.h), the rest zero."""
from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..decoders import cgroup2_root
from . import netns

SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine(), 321)
BPF_OBJ_GET_INFO_BY_FD, BPF_LINK_CREATE = 15, 28
# enum bpf_attach_type, by the hook names the specs use (libbpf's section names).
ATTACH_TYPES = {"xdp": 37, "cgroup/connect4": 10, "cgroup/connect6": 11}
# bpftool's names of the cgroup attach types: the one `cgroup detach` takes, the one `cgroup show` prints.
BPFTOOL_ATTACH = {"cgroup/connect4": ("connect4", "cgroup_inet4_connect"),
                  "cgroup/connect6": ("connect6", "cgroup_inet6_connect")}
XDP_FLAGS = {"auto": 0, "generic": 1 << 1, "native": 1 << 2}  # XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE
XDP_MODE_OFF = {1: "xdpdrv", 2: "xdpgeneric", 3: "xdpoffload"}  # `ip -d link` xdp.mode -> `ip link set` word
_libc = ctypes.CDLL(None, use_errno=True)


class TargetError(ValueError):
    """An interface or cgroup that cannot be attached to; the message says which and why."""


class _LinkCreate(ctypes.Structure):
    _fields_ = [("prog_fd", ctypes.c_uint32), ("target", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("_zero", ctypes.c_uint8 * 48)]


class _InfoByFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32), ("info", ctypes.c_uint64)]


class _LinkInfo(ctypes.Structure):
    # struct bpf_link_info: type, id, prog_id, then a union aligned to 8 bytes; its first member is
    # xdp.ifindex (u32) for an XDP link, cgroup.cgroup_id (u64) for a cgroup link: 0 once detached.
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("prog_id", ctypes.c_uint32),
                ("_pad", ctypes.c_uint32), ("target", ctypes.c_uint64), ("_rest", ctypes.c_uint8 * 48)]


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    result = _libc.syscall(SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return result


@dataclass
class Link:
    hook: str
    target: str
    fd: int
    ifindex: int = 0  # XDP links: the interface's index in its namespace

    def info(self) -> _LinkInfo:
        info = _LinkInfo()
        _bpf(BPF_OBJ_GET_INFO_BY_FD, _InfoByFd(self.fd, ctypes.sizeof(info), ctypes.addressof(info)))
        return info

    def attached(self) -> bool:
        """False once closed, or once the kernel detached it (its interface or cgroup was removed)."""
        if self.fd < 0:
            return False
        try:
            return self.info().target != 0
        except OSError:
            return False

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def resolve(hook: str, target: str) -> int | Path:
    """What a target names: an interface's index (in its namespace, for "NETNS/NAME") for XDP, a cgroup v2
    directory for cgroup hooks. TargetError when there is no such thing."""
    if hook == "xdp":
        space, name = netns.split(target)
        try:
            with netns.entered(space):
                return socket.if_nametoindex(name)
        except LookupError as err:
            raise TargetError(f"interface {target}: {err}") from None
        except OSError:
            where = f" in network namespace {space}" if space else ""
            raise TargetError(f"no network interface {name!r}{where} (see `ip{f' -n {space}' if space else ''} link`)") from None
    root = cgroup2_root()
    path = root / target.lstrip("/")
    if ".." in Path(target).parts or not path.is_dir() or not (path / "cgroup.procs").exists():
        raise TargetError(f"no cgroup {target!r} under the cgroup v2 hierarchy at {root}")
    return path


def attach(hook: str, prog_fd: int, target: str, flags: int = 0) -> Link:
    """Attach a loaded program to a target through a new link; TargetError says why it could not."""
    where = resolve(hook, target)
    try:
        if isinstance(where, int):
            with netns.entered(netns.split(target)[0]):  # the kernel finds the ifindex in our namespace
                fd = _bpf(BPF_LINK_CREATE, _LinkCreate(prog_fd, where, ATTACH_TYPES[hook], flags))
            return Link(hook, target, fd, where)
        dirfd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return Link(hook, target, _bpf(BPF_LINK_CREATE, _LinkCreate(prog_fd, dirfd, ATTACH_TYPES[hook], 0)))
        finally:
            os.close(dirfd)
    except OSError as err:
        raise TargetError(_why(hook, target, err.errno)) from None


def _why(hook: str, target: str, code: int | None) -> str:
    if hook == "xdp" and code == errno.EBUSY:
        return f"interface {target} already has an XDP program (another tool's, or another netguard's)"
    if hook == "xdp" and code == errno.EOPNOTSUPP:
        return f"interface {target}: its driver has no native XDP; use xdp_mode generic"
    if hook.startswith("cgroup/") and code == errno.EPERM:
        return (f"cgroup {target} has a {hook} program attached in exclusive mode (without BPF_F_ALLOW_MULTI), "
                f"which takes no other program (see `bpftool cgroup show`)")
    return f"cannot attach {hook} to {target}: {os.strerror(code or 0)}"


def _json(command: list[str]) -> list:
    """A command's JSON list; [] when it prints nothing (bpftool, for a cgroup with no programs) or fails."""
    out = subprocess.run(command, capture_output=True, text=True).stdout.strip()
    try:
        found = json.loads(out or "[]")
    except ValueError:
        return []
    return found if isinstance(found, list) else []


def remove_leftovers(hook: str, target: str, names: set[str]) -> list[int]:
    """Belt and braces: detach programs with one of our names from `target` that no link holds, which only an
    attachment made some other way (netlink, BPF_PROG_ATTACH: an older LMP, a hand-run test) can leave.
    A program held by a link belongs to a live process and is left alone. Returns the ids removed."""
    linked = {entry.get("prog_id") for entry in _json(["bpftool", "-j", "link", "show"])}
    removed = []
    if hook == "xdp":
        space, name = netns.split(target)
        ip = ["ip", *(["-n", space] if space else [])]
        for dev in _json([*ip, "-j", "-d", "link", "show", "dev", name]):
            for entry in dev.get("xdp", {}).get("attached", []):
                prog = entry.get("prog", {})
                if prog.get("name") in names and prog.get("id") not in linked and entry.get("mode") in XDP_MODE_OFF:
                    subprocess.run([*ip, "link", "set", "dev", name, XDP_MODE_OFF[entry["mode"]], "off"],
                                   capture_output=True)
                    removed.append(prog["id"])
        return removed
    path = str(resolve(hook, target))
    for prog in _json(["bpftool", "-j", "cgroup", "show", path]):
        detach_as, shown_as = BPFTOOL_ATTACH[hook]
        if prog.get("name") in names and prog.get("id") not in linked and prog.get("attach_type") == shown_as:
            subprocess.run(["bpftool", "cgroup", "detach", path, detach_as, "id", str(prog["id"])], capture_output=True)
            removed.append(prog["id"])
    return removed
