"""A cgroup (v2) of its own for each scenario run, so that the run's whole process tree can be ended at
once: a command that daemonises (double fork, new session) leaves its process group and its parent,
never its cgroup. cgroup.kill (Linux 5.14) SIGKILLs every process in it, forks in flight included."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

from exporters._lib.decoders import own_cgroup2


def path_for(data_dir: str, run_id: int) -> Path:
    """The run's cgroup, beside this process in the hierarchy; named after the data directory too, so that
    two admin services (tests) never share one."""
    tag = hashlib.sha256(data_dir.encode()).hexdigest()[:8]
    return own_cgroup2() / f"lmp-scenario-{tag}-{run_id}"


def make(group: Path) -> None:
    """Create the cgroup (OSError if this host cannot: no cgroup v2, or no cgroup.kill)."""
    group.mkdir(exist_ok=True)
    if not (group / "cgroup.kill").exists():
        group.rmdir()
        raise OSError(f"{group} has no cgroup.kill (Linux 5.14 or later is needed)")


def wrap(group: Path, argv: list[str]) -> list[str]:
    """argv started inside `group`: a shell moves itself there, then becomes argv. (Popen cannot place a
    child in a cgroup itself, and preexec_fn is unsafe in a threaded server.)"""
    return ["/bin/sh", "-c", 'echo 0 > "$0/cgroup.procs" && exec "$@"', str(group), *argv]


def populated(group: Path) -> bool:
    try:
        return "populated 1" in (group / "cgroup.events").read_text()
    except OSError:
        return False


def kill(group: Path, timeout: float = 10.0) -> None:
    """SIGKILL everything in the cgroup, wait until it is empty, and remove it."""
    try:
        (group / "cgroup.kill").write_text("1")
    except OSError:
        return  # gone already (the run's watch and a refresh may both end it)
    deadline = time.monotonic() + timeout
    while populated(group) and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        group.rmdir()
    except OSError:
        pass  # a process still dying: the next refresh of the run removes it
