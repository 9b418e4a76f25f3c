"""Workloads that make the kernel do what a collector counts, shared by the collectors' tests and the
real-Prometheus test of the dashboards. Each cleans up what it made (cgroups, loop devices, processes)."""
from __future__ import annotations

import mmap
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from exporters._lib.decoders import cgroup2_root

# --- an OOM kill in a memory-limited cgroup ---------------------------------------------------------------
LIMIT_MB = 64
EACH_MB = 40  # victim and trigger together need 80 MiB, more than the limit; either alone fits
VICTIM, TRIGGER = "lmp-oom-victim", "lmp-oom-trigger"  # command names (15 characters at most)

# Names itself, waits to be placed in its cgroups, touches EACH_MB MiB, says so, waits.
OOM_CHILD = f"""
import mmap, sys
open("/proc/self/comm", "w").write(sys.argv[1])
sys.stdin.readline()
m = mmap.mmap(-1, {EACH_MB} << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for i in range(0, {EACH_MB} << 20, {mmap.PAGESIZE}):
    m[i] = 1
print("touched", flush=True)
sys.stdin.readline()
"""


def own_cgroup(controller: str) -> str:
    """This process's cgroup path in a v1 hierarchy (`memory`) or, for "", in the v2 one."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):  # "0::/path" is v2: its controller list is empty
            return path
    raise AssertionError(f"this process is in no {controller or 'v2'} cgroup")


@dataclass
class OomGroups:
    memory: Path  # cgroup v1 memory controller: the limit
    victim: Path  # cgroup v2 (the exporter's label): the victim's
    trigger: Path  # cgroup v2: the allocating process's
    v2_root: Path

    def label(self, group: Path) -> str:
        return "/" + str(group.relative_to(self.v2_root))


@contextmanager
def oom_groups() -> Iterator[OomGroups]:
    """A memory cgroup limited to LIMIT_MB under this process's own memory cgroup, and two v2 cgroups under
    its own v2 cgroup; all removed afterwards."""
    memory_root = Path("/sys/fs/cgroup/memory")
    assert (memory_root / "cgroup.procs").exists(), "expects the cgroup v1 memory controller (hybrid mode)"
    v2_root = cgroup2_root()  # /sys/fs/cgroup/unified here (hybrid), /sys/fs/cgroup on pure v2 hosts
    tag = f"lmp-test-oom-{os.getpid()}"
    made = OomGroups(memory_root / own_cgroup("memory").lstrip("/") / tag,
                     v2_root / own_cgroup("").lstrip("/") / f"{tag}-victim",
                     v2_root / own_cgroup("").lstrip("/") / f"{tag}-trigger", v2_root)
    created = []
    try:
        for group in (made.memory, made.victim, made.trigger):
            group.mkdir()
            created.append(group)
        limit = str(LIMIT_MB << 20)
        (made.memory / "memory.limit_in_bytes").write_text(limit)
        if (made.memory / "memory.memsw.limit_in_bytes").exists():  # memory + swap: no escape into swap
            (made.memory / "memory.memsw.limit_in_bytes").write_text(limit)
        if len(Path("/proc/swaps").read_text().splitlines()) > 1:  # swap is on: do not let it save anyone
            (made.memory / "memory.swappiness").write_text("0")
        yield made
    finally:
        for group in reversed(created):
            group.rmdir()


def cgroup_oom_kills(memory_group: Path) -> int:
    """The kernel's own count of OOM kills in a v1 memory cgroup."""
    line = next(l for l in (memory_group / "memory.oom_control").read_text().splitlines() if l.startswith("oom_kill "))
    return int(line.split()[1])


def _oom_child(comm: str, memory: Path, v2: Path, oom_score_adj: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", OOM_CHILD, comm], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    (memory / "cgroup.procs").write_text(str(proc.pid))  # before it allocates: charged to the limit
    (v2 / "cgroup.procs").write_text(str(proc.pid))
    Path(f"/proc/{proc.pid}/oom_score_adj").write_text(str(oom_score_adj))
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return proc


def oom_kill(groups: OomGroups) -> None:
    """Two processes share the limited cgroup; the victim takes its 40 MiB first and offers itself
    (oom_score_adj 1000: the OOM killer's first choice); the trigger then allocates past the limit and is
    the task running when the kill happens. Returns once the victim is dead and the trigger has exited."""
    procs = []
    try:
        procs.append(_oom_child(VICTIM, groups.memory, groups.victim, 1000))
        assert procs[0].stdout.readline().strip() == "touched"
        procs.append(_oom_child(TRIGGER, groups.memory, groups.trigger, 0))
        assert procs[1].stdout.readline().strip() == "touched"  # it got its memory: the victim's
        assert procs[0].wait(timeout=30) == -signal.SIGKILL
        procs[1].stdin.close()
        assert procs[1].wait(timeout=30) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


# --- block I/O errors -------------------------------------------------------------------------------------
@contextmanager
def failing_disk(folder: Path, size_mb: int = 4) -> Iterator[str]:
    """A loop device (direct I/O) over a file that is then cut to a quarter: a read past the file's new end
    completes with an I/O error (the loop driver ends a request that got no data with EIO). Yields the
    device path; detaches it afterwards."""
    backing = folder / "lmp-failing-disk"
    with open(backing, "wb") as f:
        f.truncate(size_mb << 20)
    device = subprocess.run(["losetup", "--find", "--show", "--direct-io=on", str(backing)], check=True,
                            capture_output=True, text=True).stdout.strip()
    try:
        os.truncate(backing, (size_mb << 20) // 4)
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], check=True)
        backing.unlink()


def read_past_the_end(device: str, reads: int) -> None:
    """O_DIRECT reads of one block each in the device's last quarter, each failing with EIO."""
    block = 4096
    buf = mmap.mmap(-1, block)  # O_DIRECT needs an aligned buffer
    fd = os.open(device, os.O_RDONLY | os.O_DIRECT)
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        for i in range(reads):
            try:
                os.preadv(fd, [buf], size - (i + 1) * block)
            except OSError:
                pass  # EIO is the point
    finally:
        os.close(fd)


# --- TCP: connections, refusals, resets, SYN retransmissions ----------------------------------------------
def tcp_traffic(connections: int = 10) -> None:
    """Connections with a round trip of data each; connects refused by a closed port (a reset sent and
    received); and connects whose SYNs a full accept queue drops, so that they are retransmitted."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(connections)
        for _ in range(connections):
            with socket.create_connection(server.getsockname(), timeout=5) as client:
                peer, _ = server.accept()
                with peer:
                    client.sendall(b"lmp" * 1000)
                    peer.recv(65536)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: a connect there is answered with a reset
        for _ in range(3):
            with socket.socket() as client:
                assert client.connect_ex(closed.getsockname()) != 0
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)  # one connection fills the accept queue; later SYNs are dropped
        first = socket.create_connection(full.getsockname(), timeout=5)
        waiting = socket.socket()
        waiting.setblocking(False)
        waiting.connect_ex(full.getsockname())
        time.sleep(3.5)  # SYN retransmissions are due after 1 s and 3 s: two, seen by scrapes 1 s apart
        waiting.close()
        first.close()


def udp_to_closed_port(datagrams: int = 20) -> None:
    """Datagrams the kernel drops for want of a socket (NO_SOCKET)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(datagrams):
            s.sendto(b"lmp", ("127.0.0.1", port))


def processes_and_signals() -> None:
    """Children that exit with a code, that die of SIGSEGV and SIGKILL, and one that handles a signal."""
    for code in (0, 3):
        subprocess.run(["sh", "-c", f"exit {code}"])
    for sig in ("SEGV", "KILL"):
        subprocess.run(["sh", "-c", f"kill -{sig} $$"])
    handler = subprocess.Popen(["sh", "-c", "trap 'exit 0' USR1; while :; do sleep 0.05; done"])
    time.sleep(0.3)  # the trap is set
    handler.send_signal(signal.SIGUSR1)
    handler.wait(timeout=10)


# --- CPU hogs sharing one CPU ------------------------------------------------------------------------------
# Spins for the given seconds of wall-clock time, and prints its own scheduler statistics
# (/proc/self/schedstat: ns on the CPU, ns waiting in a run queue, times it got the CPU) as the spin
# starts and as it ends. It never sleeps in between, so every wait of the spin is a preemption.
HOG = """
import sys, time
stat = lambda: open("/proc/self/schedstat").read().split()
first = stat()
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
print(*first, *stat(), flush=True)
"""


@dataclass
class HogStats:
    waited_ns: int  # in a run queue, during the spin
    waits: int  # times it got the CPU back, during the spin
    lifetime_waited_ns: int  # in a run queue, from its exec to its exit


def cpu_hogs(count: int, seconds: float, cgroup_dir: Path | None = None) -> list[HogStats]:
    """`count` processes spinning on one CPU together, optionally in a cgroup; their run-queue waits, as
    the kernel's own per-task statistics count them (the whole life's read from the zombie, before it
    is reaped)."""
    cpu = max(os.sched_getaffinity(0))

    def place() -> None:  # in the child, before exec
        os.sched_setaffinity(0, {cpu})
        if cgroup_dir is not None:
            (cgroup_dir / "cgroup.procs").write_text("0")

    hogs = [subprocess.Popen([sys.executable, "-c", HOG, str(seconds)], stdout=subprocess.PIPE, text=True,
                             preexec_fn=place) for _ in range(count)]
    stats = []
    for hog in hogs:
        try:
            out = hog.stdout.read()  # type: ignore[union-attr]
            os.waitid(os.P_PID, hog.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
            lifetime_waited = int(Path(f"/proc/{hog.pid}/schedstat").read_text().split()[1])
        finally:
            hog.wait(timeout=30)
        assert hog.returncode == 0
        _, wait0, slices0, _, wait1, slices1 = map(int, out.split())
        stats.append(HogStats(wait1 - wait0, slices1 - slices0, lifetime_waited))
    return stats


def l7_traffic(scratch: Path) -> None:
    """Requests of every protocol the l7 collector knows, each with some that fail, to real servers on
    loopback: HTTP 200 and 500 (and through a slow upstream), DNS NOERROR and REFUSED (a name dnsmasq has
    no upstream for), Redis commands and a WRONGTYPE reply, PostgreSQL queries and an undefined table."""
    from testkit import servers

    folders = {name: scratch / f"l7-{name}" for name in ("nginx", "dns", "redis")}
    for folder in folders.values():
        folder.mkdir()
    # Twice, a few scrapes apart: a counter's first sample is where its series starts, so only what
    # follows it shows in rate() (and so in the error ratios and their alerts).
    with servers.nginx(folders["nginx"]) as port:
        for rounds in range(2):
            time.sleep(2 * rounds)
            for path in ("/ok", "/ok", "/fail", "/slow"):
                subprocess.run(["curl", "-s", "-o", "/dev/null", "--noproxy", "*", f"http://127.0.0.1:{port}{path}"],
                               check=True, timeout=60)
    with servers.dnsmasq(folders["dns"]) as port:
        subprocess.run(["dig", "+tries=1", "@127.0.0.1", "-p", str(port), "found.lmp.test", "example.com"],
                       check=True, capture_output=True, timeout=60)
    with servers.redis(folders["redis"]) as port:
        subprocess.run(["redis-cli", "-p", str(port)], input="SET k v\nGET k\nLPUSH k x\n", text=True,
                       check=True, capture_output=True, timeout=60)
    with servers.postgres(scratch) as port:
        for rounds in range(2):
            time.sleep(2 * rounds)
            for sql in ("SELECT 1", "SELECT * FROM no_such_table"):
                subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c", sql],
                               capture_output=True, timeout=60)
