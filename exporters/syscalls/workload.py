"""What makes syscalls' panels show data beyond the host's own traffic: a system call that fails (ENOENT)."""
from pathlib import Path


def run(scratch: Path) -> None:
    try:
        open(scratch / "missing")
    except FileNotFoundError:
        pass
