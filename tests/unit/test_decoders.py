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
