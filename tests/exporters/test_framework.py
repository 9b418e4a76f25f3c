"""The exporter framework against a real kernel: bad inputs, protocol details, decoders, map overflow."""
from __future__ import annotations

import gzip
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.openmetrics import parser as openmetrics_parser

from exporters._lib import catalog
from exporters._lib.decoders import syscall_names
from tests.conftest import LMP, bpf_program_ids, check_self_metrics, free_port, programs_left, run_lmp

FIXTURES = Path(__file__).parent / "fixtures"
SCHED_GET_PRIORITY_MIN = {name: nr for nr, name in syscall_names().items()}["sched_get_priority_min"]


def copy_collector(tmp_path: Path, src: str, name: str, spec_text: str) -> Path:
    """A collector folder `name` in tmp_path with src's kernel code and the given spec."""
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(catalog.EXPORTERS_DIR / src / f"{src}.bpf.c", folder / f"{name}.bpf.c")
    (folder / f"{name}.yaml").write_text(spec_text)
    return tmp_path


def test_unknown_collector_exits_2_and_lists_the_collectors():
    result = run_lmp("exporter", "nosuch", "--listen", "127.0.0.1:1")
    assert result.returncode == 2
    assert "no collector named 'nosuch'" in result.stderr
    for name in ("syscalls", "runqlat", "biolatency"):
        assert name in result.stderr


FOLDER_KEYS = "answers: a test\nport: 9498\nenabled: false\n"  # what every spec has, after the lines that break


@pytest.mark.parametrize("spec_text, line, reason", [
    ("name: broken\nsummary: x\nrequires: {tracepoints: [raw_syscalls:sys_exit]}\nmetrics:\n"
     "  - {name: lmp_x_total, type: countr, help: h}\n" + FOLDER_KEYS, 5, "'countr' is not one of"),
    ("name: broken\nsummary: x\nrequires: {}\nmetrics:\n  - name: lmp_x\n    type: counter\n    help: h\n"
     + FOLDER_KEYS, 5, "a counter's name ends in _total"),
    ("name: broken\nsummary: x\nrequires: {tracepoints: [a:b]\nmetrics: []\n", 4, "invalid YAML"),
])
def test_malformed_spec_names_file_line_and_reason(tmp_path, spec_text, line, reason):
    before = bpf_program_ids()
    extra = copy_collector(tmp_path, "syscalls", "broken", spec_text)
    result = run_lmp("exporter", "broken", "--collector-dir", str(extra), "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2, result.stderr
    assert f"broken.yaml:{line}:" in result.stderr
    assert reason in result.stderr
    assert not programs_left(bpf_program_ids() - before)


def test_missing_hook_is_named_and_nothing_is_attached(tmp_path):
    before = bpf_program_ids()
    spec = (catalog.EXPORTERS_DIR / "syscalls" / "syscalls.yaml").read_text().replace("name: syscalls", "name: needs")
    spec = spec.replace("tracepoints: [raw_syscalls:sys_exit]", "tracepoints: [raw_syscalls:sys_exit, lmp:no_such_event]")
    extra = copy_collector(tmp_path, "syscalls", "needs", spec)
    result = run_lmp("exporter", "needs", "--collector-dir", str(extra), "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 3
    assert "lacks the hook(s) it requires: lmp:no_such_event" in result.stderr
    assert not programs_left(bpf_program_ids() - before)


def test_port_in_use_is_refused_before_anything_is_attached():
    before = bpf_program_ids()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_lmp("exporter", "syscalls", "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert not programs_left(bpf_program_ids() - before)


def test_not_root_is_refused_with_a_clear_message():
    result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *LMP,
                             "exporter", "syscalls", "--listen", f"127.0.0.1:{free_port()}"],
                            capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 1, result.stderr
    assert "must run as root" in result.stderr


def test_unknown_option_is_refused():
    result = run_lmp("exporter", "syscalls", "-o", "nosuch=1", "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert "unknown option 'nosuch=1' (options: latency, filter_tgid, cgroup, series_budget, min_cgroup_age, forget_after)" in result.stderr


def test_openmetrics_gzip_self_metrics_and_promtool(exporter):
    e = exporter("syscalls", "-o", "latency=true")  # with a histogram family too
    request = urllib.request.Request(e.url, headers={"Accept": "application/openmetrics-text; version=1.0.0",
                                                     "Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert response.headers["Content-Encoding"] == "gzip"
        body = gzip.decompress(response.read()).decode()
    assert body.rstrip().endswith("# EOF")
    assert "# TYPE lmp_syscalls counter" in body
    # client_python's OpenMetrics parser is strict: it rejects any line out of the format.
    families = {f.name: f for f in openmetrics_parser.text_string_to_metric_families(body)}
    assert families["lmp_syscalls"].type == "counter"
    assert families["lmp_syscall_latency_seconds"].type == "histogram"
    assert families["lmp_exporter_scrape_success"].samples[0].value == 1
    text = e.text()
    for line in ('lmp_exporter_scrape_success{collector="syscalls"} 1.0',
                 'lmp_exporter_program_attached{collector="syscalls",hook="raw_syscalls:sys_exit"} 1.0',
                 'lmp_exporter_map_overflow_total{collector="syscalls",map="syscall_errors_total"} 0.0'):
        assert line in text
    assert f'kernel="{platform.release()}"' in next(l for l in text.splitlines() if l.startswith("lmp_exporter_build_info{"))
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    check_self_metrics(e.scrape(), function=False)


CALLER = "import os, sys\nsys.stdin.readline()\nos.sched_get_priority_min(os.SCHED_OTHER)\n"


def call_once(cgroup_dir: Path | None = None) -> tuple[int, str]:
    """Start a process, optionally move it into a cgroup, let it make one sched_get_priority_min call."""
    proc = subprocess.Popen([sys.executable, "-c", CALLER], stdin=subprocess.PIPE, text=True)
    if cgroup_dir is not None:
        (cgroup_dir / "cgroup.procs").write_text(str(proc.pid))
    comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()
    proc.communicate("go\n", timeout=30)
    assert proc.returncode == 0
    return proc.pid, comm


def test_decoders_name_the_real_process_cgroup_and_comm(exporter, cgroup):
    group_dir, group_path = cgroup
    probe = exporter("probe", "--collector-dir", str(FIXTURES), "-o", f"syscall_nr={SCHED_GET_PRIORITY_MIN}",
                     "-o", "capacity=64")
    pid, comm = call_once(group_dir)
    scrape = probe.scrape()
    assert scrape.value("lmp_probe_calls_total", pid=str(pid), cgroup=group_path, comm=comm) == 1


def test_a_full_map_counts_what_it_dropped(exporter, cgroup):
    capacity, callers = 4, 7
    group_dir, _ = cgroup
    probe = exporter("probe", "--collector-dir", str(FIXTURES), "-o", f"syscall_nr={SCHED_GET_PRIORITY_MIN}",
                     "-o", f"capacity={capacity}", "-o", f"filter_cgroup={os.stat(group_dir).st_ino}")
    for _ in range(callers):
        call_once(group_dir)
    scrape = probe.scrape()
    assert scrape.value("lmp_exporter_map_entries", map="probe_calls_total") == capacity
    assert scrape.value("lmp_exporter_map_capacity", map="probe_calls_total") == capacity
    assert scrape.value("lmp_exporter_map_overflow_total", map="probe_calls_total") == callers - capacity
    assert sum(s.value for s in scrape.families["lmp_probe_calls"].samples) == capacity


def test_keys_of_removed_cgroups_are_forgotten(exporter, cgroup):
    parent, parent_path = cgroup
    probe = exporter("probe", "--collector-dir", str(FIXTURES), "-o", f"syscall_nr={SCHED_GET_PRIORITY_MIN}",
                     "-o", "capacity=64")
    child = parent / "short-lived"
    child.mkdir()
    removed = f"cgroup_{child.stat().st_ino}"  # what a removed cgroup's id decodes to
    try:
        pid, comm = call_once(child)
    finally:
        child.rmdir()  # the caller has exited: the cgroup can go
    # First scrape: the id is not found (the cgroup is gone) and becomes a suspect; its key leaves the
    # kernel's map when the next scrape, after a fresh walk of the hierarchy, still cannot find it. The
    # cgroup has no name any more, but the process id and command name still say who made the call (as an
    # OOM victim's does): the series keeps them, and outlives the key for forget_after (a cgroup that is
    # the only label saying who folds into `other` instead: tests/unit/test_budget.py).
    first = probe.scrape()
    assert first.value("lmp_probe_calls_total", pid=str(pid), cgroup=removed, comm=comm) == 1
    assert first.value("lmp_probe_calls_total", default=0.0, pid="other", cgroup="other", comm="other") == 0
    assert first.value("lmp_exporter_map_entries", map="probe_calls_total") == 1
    time.sleep(1.1)  # the decoder walks the hierarchy at most once a second
    probe.scrape()
    last = probe.scrape()
    assert last.value("lmp_exporter_map_entries", map="probe_calls_total") == 0
    assert last.value("lmp_probe_calls_total", pid=str(pid), cgroup=removed, comm=comm) == 1


# Makes one sched_get_priority_min call for each line it reads, and says so; ends at end of input.
LIVE = ("import os, sys\nfor _ in sys.stdin:\n    os.sched_get_priority_min(os.SCHED_OTHER)\n"
        "    print('called', flush=True)\n")
FORGET = 2  # seconds: the forget_after the next test sets


def call(proc: subprocess.Popen, times: int) -> None:
    for _ in range(times):
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "called"


def test_keys_of_exited_processes_are_forgotten_and_the_living_stay_exact(exporter, cgroup):
    """The probe's `pid` label is a process id (decoder pid): once a process has exited, the second pass
    that misses it deletes its key from the kernel's map, and its series ends forget_after later; a process
    that lives on keeps its key and its exact count."""
    group_dir, _ = cgroup
    probe = exporter("probe", "--collector-dir", str(FIXTURES), "-o", f"syscall_nr={SCHED_GET_PRIORITY_MIN}",
                     "-o", "capacity=64", "-o", f"filter_cgroup={os.stat(group_dir).st_ino}",
                     "-o", f"forget_after={FORGET}")
    live = subprocess.Popen([sys.executable, "-c", LIVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        (group_dir / "cgroup.procs").write_text(str(live.pid))
        call(live, 3)
        gone, _ = call_once(group_dir)  # one call, then it exits
        assert not Path(f"/proc/{gone}").exists()
        first = probe.scrape()
        assert first.value("lmp_probe_calls_total", pid=str(gone)) == 1
        assert first.value("lmp_probe_calls_total", pid=str(live.pid)) == 3
        assert first.value("lmp_exporter_map_entries", map="probe_calls_total") == 2
        probe.scrape()  # the second pass that misses the exited process deletes its key
        kept = probe.scrape()
        assert kept.value("lmp_exporter_map_entries", map="probe_calls_total") == 1  # the living one's
        assert kept.value("lmp_probe_calls_total", pid=str(gone)) == 1  # shown a while: forget_after
        time.sleep(FORGET + 0.5)
        call(live, 2)
        last = probe.scrape()
        assert last.value("lmp_probe_calls_total", default=0.0, pid=str(gone)) == 0, \
            "the exited process's series outlived forget_after"
        assert last.value("lmp_probe_calls_total", pid=str(live.pid)) == 5
        assert last.value("lmp_exporter_map_entries", map="probe_calls_total") == 1
    finally:
        live.stdin.close()
        live.kill()
        live.wait()
