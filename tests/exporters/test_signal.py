"""signal: a sender and its receiver, alone in a cgroup, exchange signals whose fate we know exactly.

With the cgroup option the generated signals are counted in the sender's cgroup and the delivered ones
in the receiver's; both are ours, so no other process on the host can change those series."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import delta

HANDLED = 19  # SIGUSR2, caught by a handler; each acknowledged before the next is sent
IGNORED = 5  # SIGWINCH, whose default action is to ignore it: dropped when sent, never delivered
BLOCKED = 3  # SIGUSR1 while blocked: the first is queued, the others merge into it

# The receiver is forked by the sender, so both are in the cgroup the sender is moved to.
SENDER = f"""
import os, signal, sys
if not sys.stdin.readline():  # the test ended before it began
    sys.exit()
acks_r, acks_w = os.pipe()
cmds_r, cmds_w = os.pipe()
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGUSR2, lambda *_: os.write(acks_w, b"2"))
    signal.signal(signal.SIGUSR1, lambda *_: os.write(acks_w, b"1"))
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    os.write(acks_w, b"r")
    while os.read(cmds_r, 1) == b"u":
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])
    os._exit(0)
assert os.read(acks_r, 1) == b"r"
for _ in range({HANDLED}):
    os.kill(pid, signal.SIGUSR2)
    assert os.read(acks_r, 1) == b"2"
for _ in range({IGNORED}):
    os.kill(pid, signal.SIGWINCH)
for _ in range({BLOCKED}):
    os.kill(pid, signal.SIGUSR1)
os.write(cmds_w, b"u")
assert os.read(acks_r, 1) == b"1"
os.kill(pid, signal.SIGTERM)  # default action: the receiver dies, and its exit sends us SIGCHLD
_, status = os.waitpid(pid, 0)
assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
print("done", flush=True)
sys.stdin.readline()
"""

GENERATED = {  # (signal, result): count, all sent from inside the cgroup
    ("SIGUSR2", "delivered"): HANDLED,
    ("SIGWINCH", "ignored"): IGNORED,
    ("SIGUSR1", "delivered"): 1,
    ("SIGUSR1", "already_pending"): BLOCKED - 1,
    ("SIGTERM", "delivered"): 1,
    ("SIGCHLD", "ignored"): 1,  # the sender keeps SIGCHLD's default action, which is to ignore it
}
DELIVERED = {  # (signal, handler): count, all received inside the cgroup
    ("SIGUSR2", "handler"): HANDLED,
    ("SIGUSR1", "handler"): 1,
    # A fatal signal with the default action is turned into a group-wide SIGKILL when it is sent
    # (complete_signal() in kernel/signal.c), so the receiver takes SIGKILL off its queue.
    ("SIGKILL", "default"): 1,
}


@pytest.fixture
def sender(cgroup):
    group_dir, group_path = cgroup
    proc = subprocess.Popen([sys.executable, "-c", SENDER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        (group_dir / "cgroup.procs").write_text(str(proc.pid))

        def go() -> None:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "done"

        yield group_path, go
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0


def series(scrape, family: str, group: str) -> dict[tuple[str, str], float]:
    """A family's samples in one cgroup, keyed by their two other labels' values."""
    return {tuple(v for k, v in s.labels.items() if k != "cgroup"): s.value
            for s in scrape.families[family].samples if s.labels.get("cgroup") == group}


def test_signals_sent_and_delivered_match_exactly(exporter, sender):
    group, go = sender
    everyone = exporter("signal")
    by_cgroup = exporter("signal", "-o", "cgroup=true")
    before_all, before = everyone.scrape(), by_cgroup.scrape()
    go()
    after_all, after = everyone.scrape(), by_cgroup.scrape()

    # The cgroup is new: every series in it is the test's, and nothing else appeared there.
    assert series(before, "lmp_signals_generated", group) == {}
    assert series(after, "lmp_signals_generated", group) == GENERATED
    assert series(after, "lmp_signals_delivered", group) == DELIVERED

    # Host-wide, without the option: no cgroup label, and at least the test's signals.
    assert "cgroup" not in after_all.families["lmp_signals_generated"].samples[0].labels
    for (sig, result), n in GENERATED.items():
        assert delta(before_all, after_all, "lmp_signals_generated_total", signal=sig, result=result) >= n
    for (sig, handler), n in DELIVERED.items():
        assert delta(before_all, after_all, "lmp_signals_delivered_total", signal=sig, handler=handler) >= n
