"""`lmp collector new EVENT`: the folder it writes is a collector the exporter runs, that counts its
event exactly, and whose own generated test passes."""
from __future__ import annotations

import os
import subprocess
import sys

from exporters._lib import catalog
from exporters._lib.decoders import syscall_names
from tests.conftest import delta, run_lmp

GETPPID = {name: nr for nr, name in syscall_names().items()}["getppid"]
CALLS = 23
CHILD = f"""
import ctypes, sys
libc = ctypes.CDLL(None)
print("ready", flush=True)
sys.stdin.readline()
for _ in range({CALLS}):
    libc.syscall({GETPPID})
print("done", flush=True)
sys.stdin.readline()
"""


def test_scaffolded_collector_counts_its_event(tmp_path, exporter):
    result = run_lmp("collector", "new", "syscalls:sys_enter_getppid", "--name", "ppid", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "ppid"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "ppid.bpf.c", "ppid.yaml", "test_ppid.py"]
    spec = catalog.load("ppid", [tmp_path])
    assert spec.tracepoints == ("syscalls:sys_enter_getppid",) and {n for n, o in spec.options.items() if not o.core} == {"filter_tgid", "cgroup"}
    assert "int __syscall_nr" in (folder / "ppid.bpf.c").read_text()  # the event's arguments, from its format

    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        ppid = exporter("ppid", "--collector-dir", str(tmp_path), "-o", f"filter_tgid={child.pid}")
        before = ppid.scrape()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"
        assert delta(before, ppid.scrape(), "lmp_sys_enter_getppid_events_total") == CALLS
    finally:
        child.kill()
        child.wait()


def test_generated_tests_pass(tmp_path):
    """A syscall event gets a workload that makes the syscall; any other event a workload of everything."""
    for event in ("syscalls:sys_enter_getppid", "signal:signal_generate"):
        assert run_lmp("collector", "new", event, "--dir", str(tmp_path)).returncode == 0
    tests = sorted(str(p) for p in tmp_path.glob("*/test_*.py"))
    assert len(tests) == 2
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=tmp_path,
                            capture_output=True, text=True, timeout=240, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_bad_events_and_existing_folders_are_refused(tmp_path):
    for event, message in (("nonsense", "is not a tracepoint name"), ("nosuch:event", "has no tracepoint nosuch:event")):
        result = run_lmp("collector", "new", event, "--dir", str(tmp_path))
        assert result.returncode == 2 and message in result.stderr
    assert run_lmp("collector", "new", "sched:sched_switch", "--dir", str(tmp_path)).returncode == 0
    again = run_lmp("collector", "new", "sched:sched_switch", "--dir", str(tmp_path))
    assert again.returncode == 2 and "exists" in again.stderr


def test_an_event_of_a_differently_named_class_gets_its_record_type(tmp_path):
    """sched_wakeup's record is its class's, trace_event_raw_sched_wakeup_template: found by its fields."""
    assert run_lmp("collector", "new", "sched:sched_wakeup", "--name", "wakeups", "--dir", str(tmp_path)).returncode == 0
    source = (tmp_path / "wakeups" / "wakeups.bpf.c").read_text()
    assert "int sched_wakeup(struct trace_event_raw_sched_wakeup_template *ctx)" in source
    source = source.replace("return 0;\n}", "return ctx->target_cpu < 0;\n}")  # a field of the record, read through it
    assert "ctx->target_cpu" in source
    (tmp_path / "wakeups" / "wakeups.bpf.c").write_text(source)
    result = run_lmp("build", "wakeups", "--collector-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "wakeups" / "wakeups.bpf.o").exists()
