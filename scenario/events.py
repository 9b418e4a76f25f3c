"""The ring buffer's events as scenario/bpf/*.bpf.c lays them out, decoded from the spool into the plain
dicts of LMP's event log. Each layout mirrors its C struct; a record whose size differs from its layout
means the two drifted apart, and decoding stops with that said."""
from __future__ import annotations

import ctypes as ct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from exporters._lib import decoders

from . import requests
from .ringbuf import DISCARD, HEADER, LENGTH, record_size

c_u64, c_s64, c_u32, c_s32, c_u16 = ct.c_uint64, ct.c_int64, ct.c_uint32, ct.c_int32, ct.c_uint16
HEAD = [("ts", c_u64), ("kind", c_u32), ("tid", c_u32), ("tgid", c_u32), ("cpu", c_u32)]


def layout(name: str, fields: list[tuple[str, Any]]) -> type[ct.Structure]:
    return type(name, (ct.Structure,), {"_fields_": HEAD + fields})


SYSCALL = [("enter", c_u64), ("ret", c_s64), ("args", c_u64 * 3), ("nr", c_u32), ("pad", c_u32)]
LAYOUTS: dict[int, tuple[str, type[ct.Structure]]] = {
    1: ("syscall", layout("Syscall", SYSCALL)),
    2: ("syscall", layout("SyscallPath", SYSCALL + [("path", ct.c_char * 256)])),
    3: ("offcpu", layout("OffCpu", [("off_at", c_u64), ("woken_at", c_u64), ("reason", c_u32), ("waker", c_u32),
                                    ("kstack", c_s32), ("ustack", c_s32)])),
    4: ("fault", layout("Fault", [("address", c_u64), ("ip", c_u64), ("error_code", c_u32), ("mode", c_u32)])),
    5: ("block", layout("Block", [("start", c_u64), ("issue", c_u64), ("sector", c_u64), ("dev", c_u32),
                                  ("bytes", c_u32), ("error", c_s32), ("rwbs", ct.c_char * 8), ("pad", c_u32)])),
    6: ("tcp", layout("Tcp", [("skaddr", c_u64), ("what", c_u32), ("oldstate", c_s32), ("newstate", c_s32),
                              ("sport", c_u16), ("dport", c_u16), ("family", c_u16), ("pad", c_u16),
                              ("saddr", ct.c_uint8 * 16), ("daddr", ct.c_uint8 * 16)])),
    7: ("signal", layout("Signal", [("handler", c_u64), ("sig", c_s32), ("code", c_s32), ("result", c_s32),
                                    ("target", c_u32), ("sender", c_u32), ("deliver", c_u32)])),
    8: ("exec", layout("Exec", [("pid", c_u32), ("old_pid", c_u32), ("name", ct.c_char * 256)])),
    9: ("fork", layout("Fork", [("child_tid", c_u32), ("child_tgid", c_u32)])),
    10: ("exit", layout("Exit", [("status", c_u32), ("group_dead", c_u32)])),
    11: ("sample", layout("Sample", [("ip", c_u64), ("kstack", c_s32), ("ustack", c_s32)])),
    12: ("uprobe", layout("Uprobe", [("entry", c_u64), ("arg0", c_u64), ("ret", c_s64), ("probe", c_u32),
                                    ("pad", c_u32)])),
    13: ("request", layout("Request", [("start", c_u64), ("command", ct.c_char * 16), ("fd", c_s32), ("what", c_u16),
                                       ("status", c_u16), ("port", c_u16), ("protocol", ct.c_uint8),
                                       ("role", ct.c_uint8), ("sqlstate", ct.c_char * 2), ("pad", c_u16)])),
}
KIND_NAMES = {kind: name for kind, (name, _) in LAYOUTS.items()}
REASONS = {1: "sleeping", 2: "uninterruptible", 3: "other", 4: "preempted"}
TCP_KINDS = ("state", "retransmit", "reset_sent", "reset_received")


class SpoolError(ValueError):
    pass


def records(spool: Path) -> Iterator[ct.Structure]:
    """The spool's events as ctypes structures, in the order the ring buffer gave them. The spool holds
    the ring buffer's records as they lay there (scenario/ringbuf.py): an 8-byte header whose first
    u32 is the length, the event, padding up to 8 bytes."""
    with open(spool, "rb") as f:
        while len(header := f.read(HEADER)) == HEADER:
            length = int.from_bytes(header[:4], "little")
            size = length & LENGTH
            raw = f.read(record_size(length) - HEADER)[:size]
            if len(raw) != size:
                raise SpoolError(f"{spool} ends inside a record")
            if length & DISCARD:
                continue
            kind = int.from_bytes(raw[8:12], "little")
            if kind not in LAYOUTS:
                raise SpoolError(f"event kind {kind} unknown to scenario/events.py")
            cls = LAYOUTS[kind][1]
            if kind in (9, 10):  # fork and exit reserve only their first 8 bytes after the head
                raw = raw + bytes(ct.sizeof(cls) - size)
            elif size != ct.sizeof(cls):
                raise SpoolError(f"{cls.__name__} event of {size} bytes; scenario/events.py expects "
                                 f"{ct.sizeof(cls)}: the layouts drifted from scenario/bpf/")
            yield cls.from_buffer_copy(raw)


def _ip(raw: Any, family: int) -> str:
    import ipaddress
    data = bytes(raw)
    return str(ipaddress.ip_address(data if family == 10 else data[:4]))


def _exit_status(status: int) -> dict[str, Any]:
    """task_struct.exit_code in wait(2)'s encoding: exit(code) leaves code << 8; a signal its number."""
    if status & 0x7F:
        return {"signal": decoders.signal_name(status & 0x7F), "core_dumped": bool(status & 0x80)}
    return {"code": (status >> 8) & 0xFF}


def _fault_access(code: int) -> tuple[str, str]:
    access = "exec" if code & 0x10 else "write" if code & 0x2 else "read"
    return access, "protection" if code & 0x1 else "not_present"


def decode(e: Any, t0: int, probes: list[str]) -> dict[str, Any]:
    """One event as LMP's event log has it: times in ns since following began; `t` is when it ended
    (when it was recorded), `start` when a span began."""
    kind = KIND_NAMES[e.kind]
    out: dict[str, Any] = {"kind": kind, "t": e.ts - t0, "tid": e.tid, "tgid": e.tgid, "cpu": e.cpu}
    if kind == "syscall":
        ret = e.ret
        out.update(start=e.enter - t0, name=decoders.syscall(e.nr), nr=e.nr, ret=ret,
                   errno=decoders.errno_name(-ret) if -4096 < ret < 0 else None, args=list(e.args))
        if e.kind == 2:
            out["path"] = e.path.decode(errors="replace")
    elif kind == "offcpu":
        out.update(start=e.off_at - t0, woken=e.woken_at - t0 if e.woken_at else None,
                   reason=REASONS.get(e.reason, "other"), waker=e.waker or None, kstack=e.kstack, ustack=e.ustack)
    elif kind == "fault":
        access, cause = _fault_access(e.error_code)
        out.update(mode=("user", "kernel")[e.mode], address=e.address, ip=e.ip, access=access, cause=cause)
    elif kind == "block":
        out.update(start=e.start - t0, issue=e.issue - t0 if e.issue else None, disk=decoders.disk(e.dev),
                   sector=e.sector, bytes=e.bytes, op=e.rwbs.decode(errors="replace"), error=e.error)
    elif kind == "tcp":
        states = decoders.symbolic_names("sock:inet_sock_set_state", "newstate")
        out.update(what=TCP_KINDS[e.what] if e.what < len(TCP_KINDS) else str(e.what), socket=f"{e.skaddr:#x}",
                   old=states.get(e.oldstate, str(e.oldstate)), new=states.get(e.newstate, str(e.newstate)))
        if e.family:
            out.update(saddr=_ip(e.saddr, e.family), sport=e.sport, daddr=_ip(e.daddr, e.family), dport=e.dport)
    elif kind == "signal":
        out.update(what="deliver" if e.deliver else "generate", signal=decoders.signal_name(e.sig), code=e.code,
                   target=e.target, sender=e.sender or None, result=e.result,
                   handler={0: "default", 1: "ignore"}.get(e.handler, hex(e.handler)) if e.deliver else None)
    elif kind == "exec":
        out.update(filename=e.name.decode(errors="replace"), pid=e.pid, old_pid=e.old_pid)
    elif kind == "fork":
        out.update(child_tid=e.child_tid, child_tgid=e.child_tgid, thread=e.child_tgid == e.tgid)
    elif kind == "exit":
        out.update(group_dead=bool(e.group_dead), **_exit_status(e.status))
    elif kind == "sample":
        out.update(mode="kernel" if e.kstack >= 0 or e.ip >= 1 << 63 else "user", ip=e.ip, kstack=e.kstack,
                   ustack=e.ustack)
    elif kind == "uprobe":
        out.update(start=e.entry - t0, probe=probes[e.probe] if e.probe < len(probes) else str(e.probe),
                   arg0=e.arg0, ret=e.ret)
    elif kind == "request":
        out.update(start=e.start - t0, role=requests.ROLES[e.role & 1], fd=e.fd, port=e.port,
                   **requests.describe(e.protocol, e.what, e.status, e.command, e.sqlstate))
    if "start" in out:
        out["dur"] = out["t"] - out["start"]
    return out
