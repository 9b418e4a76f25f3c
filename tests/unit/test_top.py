"""lmp top's "where to look next" line: the same places the admin's Containers page links to, and a scenario
command that `lmp` accepts as printed."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from exporters._lib.decoders import cgroup2_root
from lmp import cli, top


def own_cgroup() -> str:
    """This test's own cgroup v2 path: a cgroup with a process in it (this one)."""
    return next(line for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::"))[3:]


def test_look_next_names_the_dashboard_for_the_cgroup_and_a_command_that_runs():
    cgroup = own_cgroup()
    row = top.Row(cgroup, "me.service", "unit", {"lmp_page_faults": 5.0, "lmp_syscalls": 9.0})
    text = top.look_next(row, {"lmp_page_faults": "pagefault", "lmp_syscalls": "syscalls"})
    assert text.startswith(f"me.service: dashboard /d/lmp-syscalls?var-cgroup={cgroup}")
    assert f"(admin: /components/syscalls?cgroup={cgroup})" in text
    command = re.search(r"record a scenario: (lmp scenario attach .*)$", text).group(1)
    args = cli.parser().parse_args(shlex.split(command)[1:])  # what `lmp` would run, options checked
    assert args.scenario_command == "attach" and args.duration > 0
    assert str(args.pid) in (cgroup2_root() / cgroup.lstrip("/") / "cgroup.procs").read_text().split()


def test_look_next_without_a_collector_or_a_process_says_the_overview():
    row = top.Row("/lmp-no-such-cgroup/x y", "x y", "cgroup", {})
    assert top.look_next(row, {}) == "x y: dashboard /d/lmp-overview?var-cgroup=/lmp-no-such-cgroup/x%20y"
