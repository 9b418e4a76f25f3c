"""What makes oomkill's panels show data: one process killed by the OOM killer in a small memory cgroup."""
from pathlib import Path

from testkit.workloads import oom_groups, oom_kill


def run(scratch: Path) -> None:
    with oom_groups() as groups:
        oom_kill(groups)
