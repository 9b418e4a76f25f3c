"""Network namespaces by name (`ip netns add NAME` makes /run/netns/NAME): enter one for a moment.

Only the calling thread moves (setns(2) changes the thread's namespace), and it always comes back, so a
multi-threaded exporter or the admin's request threads can resolve or attach an interface in another
namespace without the rest of the process noticing. Sockets and BPF links made inside keep the
namespace they were made in after the thread leaves it."""
from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def split(target: str) -> tuple[str | None, str]:
    """"NETNS/NAME" -> (NETNS, NAME); a plain "NAME" is in the caller's own namespace."""
    netns, sep, name = target.rpartition("/")
    return (netns or None) if sep else None, name


@contextmanager
def entered(name: str | None) -> Iterator[None]:
    """Run the block in network namespace `name` (None: stay where we are). LookupError if it is not
    there, with what to check."""
    if name is None:
        yield
        return
    try:
        target = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        raise LookupError(f"no network namespace {name!r} (see `ip netns list`)") from None
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)
