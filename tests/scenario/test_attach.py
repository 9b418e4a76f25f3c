"""`lmp scenario attach` to a process already running, a process that exits mid-run, Ctrl-C, a command
that does not exist, a ring buffer too small for the events (lost events counted, totals exact), and one
large enough that the reader must keep up with a syscall loop."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from exporters._lib import paths
from tests.conftest import bpf_program_ids, programs_left
from tests.scenario.conftest import Background, build, scenario

ROOT = paths.ROOT
GETPPIDS, NAPS = 40, 3
# Waits for "go" on stdin (the attach is in place by then), then does known work and exits, or waits.
WORKLOAD = f"""
import os, sys, time
print("ready", flush=True)
sys.stdin.readline()
for _ in range({GETPPIDS}):
    os.getppid()
for _ in range({NAPS}):
    time.sleep(0.2)
if sys.argv[1] == "stay":
    sys.stdin.readline()
"""


def workload(mode: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WORKLOAD, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def go(proc: subprocess.Popen) -> None:
    proc.stdin.write("go\n")
    proc.stdin.flush()


def test_attach_to_a_running_process_that_exits_mid_run(tmp_path):
    proc = workload("exit")
    try:
        started = time.monotonic()
        rec = Background(tmp_path / "out", "attach", "--pid", str(proc.pid), "--duration", "60")
        go(proc)
        run = rec.wait()
        took = time.monotonic() - started
    finally:
        proc.kill()
        proc.wait()
    assert run.proc.returncode == 0, run.proc.stderr
    assert took < 30  # it ended with the process, long before --duration
    info = run.json("run.json")
    assert info["mode"] == "attach" and info["pid"] == proc.pid and info["ended_by"] == "exit"
    assert run.syscall("getppid")["count"] == GETPPIDS
    assert run.breakdown["parts"]["sleeping"] >= NAPS * 0.2
    assert len([e for e in run.events if e["kind"] == "offcpu" and e["reason"] == "sleeping" and e["dur"] > 0.19e9]) >= NAPS
    assert [e for e in run.events if e["kind"] == "exit" and e["group_dead"]][-1]["code"] == 0


def test_attach_for_a_duration_and_ctrl_c_leave_the_process_running(tmp_path):
    proc = workload("stay")
    try:
        timed = Background(tmp_path / "timed", "attach", "--pid", str(proc.pid), "--duration", "1")
        run = timed.wait()
        assert run.proc.returncode == 0 and run.json("run.json")["ended_by"] == "duration"
        assert proc.poll() is None  # attach never stops the process it follows

        stopped = Background(tmp_path / "stopped", "attach", "--pid", str(proc.pid), "--duration", "60")
        go(proc)
        time.sleep(1.5)  # the getppids and naps are over
        stopped.interrupt()
        run = stopped.wait()
        assert run.proc.returncode == 0, run.proc.stderr
        assert run.json("run.json")["ended_by"] == "interrupt"
        assert run.syscall("getppid")["count"] == GETPPIDS
        assert (run.out / "report.html").is_file() and proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_ctrl_c_ends_a_run_and_still_writes_the_results(tmp_path):
    rec = Background(tmp_path / "out", "run", "--", "sleep", "30")
    time.sleep(1.0)
    rec.interrupt()
    run = rec.wait(timeout=30)
    assert run.proc.returncode == 0, run.proc.stderr
    info = run.json("run.json")
    assert info["ended_by"] == "interrupt" and not Path(f"/proc/{info['pid']}").exists()  # the command was stopped
    assert run.breakdown["parts"]["sleeping"] >= 0.8 and run.syscall("clock_nanosleep")["count"] == 0
    assert [e for e in run.events if e["kind"] == "exec"][0]["filename"].endswith("sleep")


def test_a_command_that_does_not_exist_is_a_clear_error(tmp_path):
    before = bpf_program_ids()
    for command, message in (("no-such-command-lmp", "command not found in $PATH: no-such-command-lmp"),
                             ("/no/such/file", "command not found: /no/such/file")):
        run = scenario(tmp_path / "out", "run", "--", command, "arg")
        assert run.proc.returncode == 2 and message in run.proc.stderr
        assert not (tmp_path / "out").exists()
    assert scenario(tmp_path / "out", "attach", "--pid", "999999999", "--duration", "1").proc.returncode == 2
    assert not programs_left(bpf_program_ids() - before)


def test_a_full_ring_buffer_loses_events_but_never_the_totals(tmp_path):
    loop = build(ROOT / "bench" / "loops" / "getpid.c", tmp_path)
    calls = 300_000
    run = scenario(tmp_path / "out", "run", "--events", "syscalls", "--buffer-mb", "0.0625", "--", str(loop),
                   str(calls))  # 64 KiB: 900 events
    assert run.proc.returncode == 0, run.proc.stderr
    events = run.breakdown["events"]["syscall"]
    assert events["lost"] > 0 and events["made"] >= calls
    assert run.syscall("getpid")["count"] == calls  # counted in the kernel, exactly
    # run.json's total is every kind's: the exec and exit events may find the buffer full as well
    assert run.json("run.json")["events_lost"] == sum(kind["lost"] for kind in run.breakdown["events"].values())
    kept = sum(1 for e in run.events if e["kind"] == "syscall")
    assert kept + events["lost"] == events["made"]
    assert "events lost (ring buffer full)" in run.proc.stderr


def test_a_busy_loop_loses_no_event_when_the_buffer_holds_them(tmp_path):
    """Followed, the loop makes over a million syscall events a second. With a ring buffer that holds them
    all (32 MB, about 400,000 events), every one must reach the results, as many as the kernel counted,
    however fast the reader drains it: how fast it does (and what a smaller buffer loses) is
    `lmp bench --only scenario`'s to measure, since it moves with the machine's speed."""
    loop = build(ROOT / "bench" / "loops" / "getpid.c", tmp_path)
    calls = 300_000
    # The loop on one CPU and the recorder on the others, as a user would follow a busy process on a
    # host with a CPU to spare.
    cpus = sorted(os.sched_getaffinity(0))
    loop_cpu, recorder_cpus = (cpus[0], set(cpus[1:])) if len(cpus) > 1 else (cpus[0], None)
    run = scenario(tmp_path / "out", "run", "--events", "syscalls", "--buffer-mb", "32", "--", "taskset", "-c",
                   str(loop_cpu), str(loop), str(calls), cpus=recorder_cpus)
    assert run.proc.returncode == 0, run.proc.stderr
    made = run.breakdown["events"]
    assert {kind: n["lost"] for kind, n in made.items() if n["lost"]} == {}
    assert run.json("run.json")["events_lost"] == 0 and run.breakdown["events_over_cap"] == 0
    counted = sum(s["count"] for s in run.breakdown["syscalls"])  # in the kernel, exactly
    kept = getpids = 0
    with open(run.out / "events.json") as f:  # one event a line; too many to load at once
        for line in f:
            kept += line.startswith('{"kind":"syscall"')
            getpids += '"name":"getpid"' in line
    assert kept == counted == made["syscall"]["made"]
    assert getpids == run.syscall("getpid")["count"] == calls
