"""process: forks, execs, exit codes, fatal signals and lifetimes of children we spawn and reap ourselves.

The spawner runs in a cgroup of its own, so with the cgroup option its series count our children and
nothing else on the host; its children inherit the cgroup. Ground truth is what waitpid() returned."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from tests.conftest import delta

EXIT_CODES = [i % 7 for i in range(31)]
SLEEPERS = 3  # /bin/sleep 0.2: lifetimes above 0.2 s
KILLS = ["SIGKILL", "SIGTERM", "SIGSEGV"]  # sent with kill() to a sleeping child
THREAD_EXIT_CODE = 9  # a child whose second thread calls exit_group(9) while the main thread sleeps
THREADS = 2  # the spawner's own threads: forks of kind "thread", and no process exits

# Waits on stdin so the test can move it into the cgroup and take the first scrape; prints the raw wait
# statuses of every child; waits again so that its own exit is not counted.
SPAWNER = f"""
import json, os, signal, sys, threading
if not sys.stdin.readline():  # the test ended before it began
    sys.exit()
def spawn(*argv):
    return os.posix_spawn(argv[0], list(argv), os.environ)  # one vfork-like clone, one exec
def reap(pid):
    return os.waitpid(pid, 0)[1]
statuses = [reap(spawn("/bin/sh", "-c", f"exit {{code}}")) for code in {EXIT_CODES}]
statuses += [reap(spawn("/bin/sleep", "0.2")) for _ in range({SLEEPERS})]
for name in {KILLS}:
    pid = spawn("/bin/sleep", "30")  # posix_spawn returns once the exec is done
    os.kill(pid, getattr(signal, name))
    statuses.append(reap(pid))
statuses.append(reap(spawn(sys.executable, "-c",
    "import os, threading, time; threading.Thread(target=os._exit, args=({THREAD_EXIT_CODE},)).start(); time.sleep(60)")))
for _ in range({THREADS}):
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
print(json.dumps(statuses), flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def spawner(cgroup):
    group_dir, group_path = cgroup
    proc = subprocess.Popen([sys.executable, "-c", SPAWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd="/")
    try:
        (group_dir / "cgroup.procs").write_text(str(proc.pid))

        def go() -> list[int]:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            return json.loads(proc.stdout.readline())

        yield group_path, go
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_children_are_counted_by_exit_code_signal_and_lifetime(exporter, spawner):
    group, go = spawner
    everyone = exporter("process")
    by_cgroup = exporter("process", "-o", "cgroup=true")
    before_all, before = everyone.scrape(), by_cgroup.scrape()
    statuses = go()
    after_all, after = everyone.scrape(), by_cgroup.scrape()

    # Ground truth: what the kernel told the parent, checked against what the spawner meant to do.
    codes = Counter(os.WEXITSTATUS(s) for s in statuses if os.WIFEXITED(s))
    killed = Counter((os.WTERMSIG(s), os.WCOREDUMP(s)) for s in statuses if os.WIFSIGNALED(s))
    assert codes == Counter(EXIT_CODES + [0] * SLEEPERS + [THREAD_EXIT_CODE])
    assert sorted(sig for sig, _ in killed.elements()) == sorted(signal.Signals[n] for n in KILLS)
    children = len(statuses)

    mine = {"cgroup": group}
    assert delta(before, after, "lmp_process_forks_total", kind="process", **mine) == children
    assert delta(before, after, "lmp_process_forks_total", kind="thread", **mine) == THREADS + 1
    assert delta(before, after, "lmp_process_execs_total", **mine) == children
    for code, n in codes.items():
        assert delta(before, after, "lmp_process_exits_total", code=str(code), **mine) == n, f"code {code}"
    exits = sum(s.value for s in after.families["lmp_process_exits"].samples if s.labels["cgroup"] == group)
    assert exits == sum(codes.values())  # no other code appeared
    for (sig, core), n in killed.items():
        labels = {"signal": signal.Signals(sig).name, "core_dumped": str(bool(core)).lower(), **mine}
        assert delta(before, after, "lmp_process_fatal_signals_total", **labels) == n

    # Every child's lifetime was observed once; the sleepers' are above 0.2 s, so above the 0.131 s bucket.
    name = "lmp_process_lifetime_seconds"
    observed = delta(before, after, f"{name}_count", **mine)
    assert observed == children
    short = after.bucket(name, 2**17 * 1e-6, **mine) - before.bucket(name, 2**17 * 1e-6, default=0.0, **mine)
    assert observed - short >= SLEEPERS
    assert delta(before, after, f"{name}_sum", **mine) >= SLEEPERS * 0.2

    # Without the option: no cgroup label, and at least our children in the host-wide counts.
    assert "cgroup" not in after_all.families["lmp_process_execs"].samples[0].labels
    assert delta(before_all, after_all, "lmp_process_execs_total") >= children
    assert delta(before_all, after_all, "lmp_process_exits_total", code=str(THREAD_EXIT_CODE)) >= 1
    assert delta(before_all, after_all, f"{name}_count") >= children
