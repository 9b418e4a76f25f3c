"""`lmp run`: every enabled collector plus a real Prometheus scraping them; Ctrl-C leaves nothing behind."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tests.conftest import LMP, bpf_program_ids, free_port, programs_of

COLLECTORS = ("syscalls", "runqlat", "biolatency")


def write_config(tmp_path: Path, ports: dict[str, int], prometheus: bool = True) -> Path:
    lines = ["prometheus:", f"  enabled: {str(prometheus).lower()}", f"  listen: 127.0.0.1:{ports['prometheus']}",
             "  scrape_interval: 1s", f"  data_dir: {tmp_path / 'prometheus'}", "collectors:"]
    for name in COLLECTORS:
        lines += [f"  {name}:", f"    listen: 127.0.0.1:{ports[name]}"]
    path = tmp_path / "lmp.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def children(pid: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def query(port: int, promql: str) -> list[dict]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["data"]["result"]


def wait_for(condition, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {condition.__name__}")


def start(config: Path) -> subprocess.Popen:
    # A new session, so the test can send SIGINT to the whole group as a terminal's Ctrl-C does.
    return subprocess.Popen([*LMP, "--config", str(config), "run"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def ctrl_c(run: subprocess.Popen) -> str:
    os.killpg(run.pid, signal.SIGINT)
    output, _ = run.communicate(timeout=30)
    return output


def test_run_serves_prometheus_and_ctrl_c_leaves_nothing(tmp_path):
    before_tmp = set(Path(tempfile.gettempdir()).glob("lmp-run-*"))
    ports = {name: free_port() for name in (*COLLECTORS, "prometheus")}
    run = start(write_config(tmp_path, ports))
    try:
        def all_targets_up() -> bool:
            up = query(ports["prometheus"], 'up{job=~"lmp_.*"} == 1')
            return {r["metric"]["job"] for r in up} == {f"lmp_{n}" for n in COLLECTORS}
        wait_for(all_targets_up)
        started = children(run.pid)
        assert len(started) == len(COLLECTORS) + 1  # the exporters and Prometheus
        held = set().union(*(programs_of(pid) for pid in started))
        assert held, "the exporters hold no BPF programs"
        success = query(ports["prometheus"], "lmp_exporter_scrape_success == 1")
        assert {r["metric"]["collector"] for r in success} == set(COLLECTORS)
        assert wait_for(lambda: query(ports["prometheus"], 'lmp_syscalls_total{syscall="read"} > 0'))
        assert wait_for(lambda: query(ports["prometheus"], "lmp_runqueue_latency_seconds_count > 0"))
    finally:
        output = ctrl_c(run)
    assert run.returncode == 0, output
    for name in COLLECTORS:
        assert f"{name:<12} http://127.0.0.1:{ports[name]}/metrics" in output
    assert f"http://127.0.0.1:{ports['prometheus']}/" in output
    assert not [pid for pid in started if alive(pid)], "processes left running"
    assert not held & bpf_program_ids(), "BPF programs left attached"
    assert set(Path(tempfile.gettempdir()).glob("lmp-run-*")) == before_tmp, "temporary files left"


def test_a_collector_that_cannot_start_does_not_stop_the_others(tmp_path):
    ports = {name: free_port() for name in (*COLLECTORS, "prometheus")}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports["biolatency"]))
        busy.listen()
        run = start(write_config(tmp_path, ports, prometheus=False))
        try:
            for name in ("syscalls", "runqlat"):
                wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{ports[name]}/metrics", timeout=5).status == 200)
            wait_for(lambda: len(children(run.pid)) == 2)
        finally:
            output = ctrl_c(run)
    assert f"cannot listen on 127.0.0.1:{ports['biolatency']}" in output
    assert "collector biolatency exited with code 1; the others go on" in output
    assert run.returncode == 0
