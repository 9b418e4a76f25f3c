"""Label decoders against what this host itself says."""
from __future__ import annotations

import errno
import os
from pathlib import Path

from exporters._lib import decoders


def test_errno_names():
    assert decoders.errno_name(errno.ENOENT) == "ENOENT"
    assert decoders.errno_name(4000) == "E4000"


def test_syscall_names_cover_this_architecture():
    names = decoders.syscall_names()
    assert len(names) > 300
    assert "openat" in names.values() and "sched_get_priority_min" in names.values()
    assert decoders.syscall(100000) == "syscall_100000"


def test_disks_are_named_as_sysfs_names_them():
    disks = [d for d in Path("/sys/block").iterdir()]
    assert disks
    for disk in disks:
        major, minor = map(int, (disk / "dev").read_text().split(":"))
        assert decoders.disk(major << 20 | minor) == disk.name
    assert decoders.disk(4095 << 20 | 7) == "4095:7"


def test_comm_strips_padding():
    assert decoders.comm(b"bash\0\0\0\0") == "bash"


def test_cgroup_root_and_unknown_ids():
    paths = decoders.CgroupPaths()
    assert paths(os.stat(paths.root).st_ino) == "/"
    assert paths(1) in ("cgroup_1", "/")


def test_symbolic_names_come_from_the_running_kernels_print_format():
    states = decoders.symbolic_names("sock:inet_sock_set_state", "newstate")
    assert states[1] == "TCP_ESTABLISHED" and states[10] == "TCP_LISTEN"
    vectors = decoders.symbolic_names("irq:softirq_entry", "vec")
    assert vectors[0] == "HI" and vectors[3] == "NET_RX"
    reasons = decoders.symbolic_names("skb:kfree_skb", "reason")
    assert reasons[2] == "NOT_SPECIFIED" and "NO_SOCKET" in reasons.values()
    decode = decoders.make("symbolic", event="irq:softirq_entry", field="vec")
    assert decode(7) == "SCHED" and decode(99) == "99"


def test_signals_and_irqs():
    assert decoders.signal_name(9) == "SIGKILL" and decoders.signal_name(0) == "none"
    for irq_dir in Path("/sys/kernel/irq").iterdir():
        actions = (irq_dir / "actions").read_text().strip()
        assert decoders.irq(int(irq_dir.name)) == (f"{irq_dir.name}:{actions}" if actions else irq_dir.name)


def test_cgroup2_root_is_where_mountinfo_says(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("30 24 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                         "35 24 0:31 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n")
    assert decoders.cgroup2_root(mountinfo) == Path("/sys/fs/cgroup/unified")
    assert (decoders.cgroup2_root() / "cgroup.procs").exists()


def test_addresses_rules_and_interfaces():
    import socket
    import struct
    v4 = struct.pack("!BBH16s", 4, 24, 0, bytes([203, 0, 113, 0]) + bytes(12))
    assert decoders.cidr(v4) == "203.0.113.0/24" and decoders.cidr(bytes(20)) == ""
    v6 = struct.pack("!BBH16s", 6, 0, 8080, socket.inet_pton(socket.AF_INET6, "2001:db8::1"))
    assert decoders.endpoint(v6) == "[2001:db8::1]:8080" and decoders.endpoint(bytes(20)) == ""
    assert decoders.interface(1, {}) == "lo"  # this namespace's own, by if_indextoname
    assert decoders.interface(1, {1: "ns1/veth0"}) == "ns1/veth0"  # what a component attached to, elsewhere
    assert decoders.interface(99999, {}) == "99999"


def test_port_decoder_names_the_folded_ports_other():
    port = decoders.make("port")
    assert (port(8080), port(53), port(0)) == ("8080", "53", "other")
