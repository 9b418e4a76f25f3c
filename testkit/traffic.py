"""Traffic with a known outcome, for the function components' tests: connects from a process in a cgroup,
and datagrams counted at their receiver."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

# A child that waits to be moved into a cgroup, then connects to each HOST:PORT of its arguments and
# prints what happened to each: "ok" or the errno's name.
CONNECTOR = """
import errno, json, socket, sys
sys.stdin.readline()
out = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        s.connect((host.strip("[]"), int(port)))
        out[target] = "ok"
    except OSError as err:
        out[target] = errno.errorcode[err.errno]
    s.close()
print(json.dumps(out))
"""


def connect_from(group: Path | None, *targets: str) -> tuple[int, str, dict[str, str]]:
    """A new process, in `group` if given, connects to each target: (its pid, its comm, the outcomes)."""
    proc = subprocess.Popen([sys.executable, "-c", CONNECTOR, *targets], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    if group is not None:
        (group / "cgroup.procs").write_text(str(proc.pid))
    comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()
    out, _ = proc.communicate("go\n", timeout=30)
    assert proc.returncode == 0
    return proc.pid, comm, json.loads(out)


PAYLOAD = b"lmp netguard test"


def send_datagrams(sender: socket.socket, receiver: socket.socket, count: int) -> None:
    """`count` datagrams, with a pause every 50 so that the receiving backlog never overflows."""
    for i in range(count):
        sender.sendto(PAYLOAD, receiver.getsockname()[:2])
        if i % 50 == 49:
            time.sleep(0.001)


def datagrams_received(receiver: socket.socket) -> int:
    """Datagrams waiting at the receiver (it is drained); the veth delivers in the sender's softirq, so a
    pause means none are on their way."""
    receiver.settimeout(0.3)
    n = 0
    try:
        while True:
            receiver.recv(64)
            n += 1
    except TimeoutError:
        return n
