"""`lmp scenario run` on a program with known behaviour (known.c): every thing it does must be found in
the saved results, with the counts, paths, durations and stacks it does them with."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.scenario.conftest import Run, scenario

EXISTS, MISSING = 11, 3
PAGE = 4096


@pytest.fixture(scope="module")
def run(known: Path, disk_folder: Path, listener: int, tmp_path_factory) -> Run:
    work = disk_folder / "work"
    work.mkdir()
    for i in range(EXISTS):
        (work / f"exists-{i}").write_text("x")
    out = tmp_path_factory.mktemp("known-run") / "results"
    result = scenario(out, "run", "--children", "--uprobe", f"{known}:work_unit", "--uprobe", "libc:fsync",
                      "--", str(known), str(work), str(listener))
    assert result.proc.returncode == 0, result.proc.stderr
    return result


def own(run: Run, kind: str) -> list[dict]:
    """Events of one kind from the program itself (not its forked child)."""
    root = run.json("run.json")["pid"]
    return [e for e in run.events if e["kind"] == kind and e["tgid"] == root]


def test_five_sleeps_are_off_cpu_sleeping(run):
    assert run.syscall("clock_nanosleep")["count"] == 5
    assert run.breakdown["parts"]["sleeping"] >= 0.5
    # Each 100 ms nap is off the CPU about that long: this VM's clock has shown one 42 us short of it.
    naps = [e for e in own(run, "offcpu") if e["reason"] == "sleeping" and e["dur"] >= 99e6]
    assert len(naps) == 5, [e["dur"] for e in own(run, "offcpu")]
    stacks = run.json("events.json")["stacks"]["kernel"]
    assert all("hrtimer_nanosleep_[k]" in stacks[str(e["kstack"])] for e in naps)
    sleeping = sum(n for stack, n in run.folded("offcpu").items() if "[sleeping]" in stack and "do_nanosleep_[k]" in stack)
    assert sleeping >= 5 * 99e6


def test_seven_fsyncs_and_their_block_writes(run):
    assert run.syscall("fsync")["count"] == 7
    fsyncs = [e for e in own(run, "syscall") if e["name"] == "fsync"]
    assert len(fsyncs) == 7 and all(e["ret"] == 0 for e in fsyncs)
    # Each fsync writes the block the pwrite before it dirtied, from the program's own context.
    writes = [e for e in own(run, "block") if "W" in e["op"] and e["bytes"] > 0]
    inside = [w for w in writes if any(f["start"] <= w["start"] <= f["t"] for f in fsyncs)]
    assert len(inside) >= 7, writes
    assert run.breakdown["block"]["writes"] >= 7
    assert run.breakdown["parts"]["uninterruptible"] > 0  # it waited for the disk
    assert any("[uninterruptible]" in s and "fsync" in s for s in run.folded("offcpu"))


def test_fourteen_openat_with_three_enoent_and_their_paths(run):
    opens = [e for e in own(run, "syscall") if e["name"] == "openat" and re.search(r"/(exists|missing)-\d+$", e["path"])]
    assert len(opens) == EXISTS + MISSING
    failed = [e for e in opens if e["errno"] == "ENOENT"]
    assert sorted(Path(e["path"]).name for e in failed) == [f"missing-{i}" for i in range(MISSING)]
    assert sorted(Path(e["path"]).name for e in opens if e["ret"] >= 0) == sorted(f"exists-{i}" for i in range(EXISTS))
    assert run.syscall("openat")["errors"] >= MISSING


def test_spinning_shows_in_on_cpu_samples_with_its_symbol(run):
    spin = sum(n for stack, n in run.folded("oncpu").items() if ";main;spin" in stack)
    assert spin >= 20  # 300 ms of its CPU time at 99 Hz: ~30 samples
    assert run.breakdown["parts"]["on_cpu_user"] >= 0.25
    samples = own(run, "sample")
    assert len(samples) >= spin and all(e["mode"] == "user" for e in samples if e["kstack"] < 0)


def test_two_loopback_connections(run, listener):
    tcp = own(run, "tcp")
    sockets = {e["socket"] for e in tcp if e["new"] == "TCP_SYN_SENT" and e["dport"] == listener}
    assert len(sockets) == 2
    for s in sockets:
        changes = [(e["old"], e["new"]) for e in tcp if e["socket"] == s]
        assert ("TCP_SYN_SENT", "TCP_ESTABLISHED") in changes and ("TCP_ESTABLISHED", "TCP_FIN_WAIT1") in changes
    assert not [e for e in tcp if e["sport"] == listener]  # the listener's sockets are the test's, not its
    assert run.syscall("connect")["count"] == 2


def test_faults_in_the_pages_it_touched(run):
    region = next(e for e in own(run, "syscall") if e["name"] == "mmap" and e["args"][1] == 80 * PAGE)
    base = region["ret"]
    faults = own(run, "fault")
    touched = {e["address"] // PAGE for e in faults if e["mode"] == "user" and base <= e["address"] < base + 64 * PAGE}
    read_into = {e["address"] // PAGE for e in faults
                 if e["mode"] == "kernel" and base + 64 * PAGE <= e["address"] < base + 80 * PAGE}
    assert len(touched) == 64 and len(read_into) == 16
    assert run.breakdown["faults"]["user"] >= 64 and run.breakdown["faults"]["kernel"] >= 16


def test_exec_fork_exit_and_signals(run, known):
    root = run.json("run.json")["pid"]
    assert [e["filename"] for e in own(run, "exec")] == [str(known)]
    forks = [e for e in own(run, "fork") if not e["thread"]]
    assert len(forks) == 1
    child = forks[0]["child_tgid"]
    exits = {e["tgid"]: e for e in run.events if e["kind"] == "exit" and e["group_dead"]}
    assert exits[child]["code"] == 3 and exits[root]["code"] == 0
    signals = [(e["what"], e["signal"], e["target"]) for e in run.events if e["kind"] == "signal"]
    assert ("generate", "SIGCHLD", root) in signals  # the child's exit, to the program
    assert ("generate", "SIGUSR1", root) in signals and ("deliver", "SIGUSR1", root) in signals
    assert run.json("run.json")["exit_code"] == 0


def test_uprobes_start_the_chain_in_user_code(run):
    calls = [e for e in own(run, "uprobe") if e["probe"].endswith(":work_unit")]
    assert sorted(e["arg0"] for e in calls) == list(range(9))
    getppid = [e for e in own(run, "syscall") if e["name"] == "getppid"]
    assert all(any(c["start"] <= g["start"] and g["t"] <= c["t"] for g in getppid) for c in calls)
    fsync_calls = [e for e in own(run, "uprobe") if e["probe"] == "libc:fsync"]
    assert len(fsync_calls) == 7
    assert {u["probe"]: u["count"] for u in run.breakdown["uprobes"]} == {f"{c['probe']}": n for c, n in
                                                                           ((calls[0], 9), (fsync_calls[0], 7))}


def test_breakdown_adds_up_to_the_wall_clock_time(run):
    b = run.breakdown
    own_ns = int(run.proc.stdout.strip())  # the program's own clock, from main's start to its end
    assert abs(b["accounted_seconds"] - own_ns * 1e-9) / (own_ns * 1e-9) < 0.05
    assert abs(b["accounted_seconds"] - b["wall_seconds"]) / b["wall_seconds"] < 0.05
    assert abs(sum(b["parts"].values()) - b["accounted_seconds"]) < 1e-6
    assert sum(e["lost"] for e in b["events"].values()) == 0


def test_timeline_is_a_well_formed_trace(run):
    trace = run.json("timeline.json")["traceEvents"]
    names = {e["args"]["name"] for e in trace if e["ph"] == "M"}
    assert any(n.startswith("known ") for n in names)
    spans: dict[int, list[tuple[float, float]]] = {}
    for e in trace:
        if e["ph"] == "X":
            assert e["dur"] >= 0 and {"pid", "tid", "ts", "name"} <= set(e)
            spans.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    assert sum(1 for e in trace if e["ph"] == "X" and e["name"] == "fsync") == 7
    for tid, slices in spans.items():  # Perfetto needs a thread's slices nested, never crossing
        open_ends: list[float] = []
        for start, end in sorted(slices, key=lambda s: (s[0], -s[1])):
            while open_ends and open_ends[-1] <= start:
                open_ends.pop()
            assert not open_ends or end <= open_ends[-1] + 1e-3, (tid, start, end, open_ends[-1])
            open_ends.append(end)


def test_flame_graph_files_and_the_report(run):
    scope = run.json("oncpu.speedscope.json")
    profile = scope["profiles"][0]
    frames = [f["name"] for f in scope["shared"]["frames"]]
    assert len(profile["samples"]) == len(profile["weights"]) and "spin" in frames
    assert all(0 <= i < len(frames) for s in profile["samples"] for i in s)
    assert sum(profile["weights"]) == sum(run.folded("oncpu").values())
    off = run.json("offcpu.speedscope.json")["profiles"][0]
    assert off["unit"] == "nanoseconds" and sum(off["weights"]) == sum(run.folded("offcpu").values())
    html = (run.out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched from the network
    blob = re.search(r'<script id="lmp-data" type="application/json">(.*?)</script>', html, re.S).group(1)
    data = json.loads(blob)
    assert data["breakdown"] == run.breakdown
    assert "spin" in json.dumps(data["flames"]["oncpu"]) and data["timeline"]["slices"]
    assert set(run.json("run.json")["artifacts"]) <= {p.name for p in run.out.iterdir()}
