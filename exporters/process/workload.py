"""What makes process's panels (and signal's) show data: children that exit with a code, die of SIGSEGV
and SIGKILL, and one that handles a signal."""
from pathlib import Path

from testkit.workloads import processes_and_signals


def run(scratch: Path) -> None:
    processes_and_signals()
