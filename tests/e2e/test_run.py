"""`lmp run` end to end: the admin service owning the exporters, a real Prometheus finding them through the
admin's service discovery, a collector enabled and disabled through the API while Prometheus follows, and
Ctrl-C leaving nothing behind. The same without the admin, with static targets."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import LMP, bpf_program_ids, programs_left, free_port, programs_of
from tests.lmprun import Api, Run, active_targets, alive, descendants, query, serving, up_collectors, wait_for

COLLECTORS = ("syscalls", "runqlat", "biolatency")


def write_config(tmp_path: Path, ports: dict[str, int], admin: bool = True, prometheus: bool = True,
                 disabled: tuple[str, ...] = ()) -> Path:
    lines = ["prometheus:", f"  enabled: {str(prometheus).lower()}", f"  listen: 127.0.0.1:{ports['prometheus']}",
             "  scrape_interval: 1s", f"  data_dir: {tmp_path / 'prometheus'}",
             "admin:", f"  enabled: {str(admin).lower()}", f"  listen: 127.0.0.1:{ports['admin']}",
             f"  data_dir: {tmp_path / 'data'}", f"  run_dir: {tmp_path / 'run'}", "collectors:"]
    for name in COLLECTORS:
        lines += [f"  {name}:", f"    enabled: {str(name not in disabled).lower()}",
                  f"    listen: 127.0.0.1:{ports[name]}"]
    path = tmp_path / "lmp.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_run_through_the_admin_prometheus_follows_enable_and_disable(tmp_path):
    before_tmp = set(Path(tempfile.gettempdir()).glob("lmp-run-*"))
    ports = {name: free_port() for name in (*COLLECTORS, "prometheus", "admin")}
    run = Run(write_config(tmp_path, ports, disabled=("biolatency",)))
    try:
        password = run.wait_for_line("log in as admin, password").split("password ")[1].split()[0]
        run.wait_for_line("prometheus")
        api = Api(ports["admin"], "admin", password)  # the printed credentials work
        catalog = {c["name"]: c for c in api.call("GET", "/components")}
        assert catalog["syscalls"]["running"] and not catalog["biolatency"]["enabled"]

        wait_for(lambda: up_collectors(ports["prometheus"]) == {"syscalls", "runqlat"})
        held = set().union(*(programs_of(pid) for pid in descendants(run.proc.pid)))
        assert held, "the exporters hold no BPF programs"
        assert wait_for(lambda: query(ports["prometheus"], 'lmp_syscalls_total{job="lmp",syscall="read"} > 0'))
        success = query(ports["prometheus"], "lmp_exporter_scrape_success == 1")
        assert {r["metric"]["collector"] for r in success} == {"syscalls", "runqlat"}  # no exported_collector

        # Enabling a collector adds its target with no Prometheus restart, through service discovery.
        assert api.call("POST", "/components/biolatency/enable")["enabled"]
        wait_for(lambda: "biolatency" in up_collectors(ports["prometheus"]))
        # Disabling one ends its process, closes its port and removes its target.
        assert not api.call("POST", "/components/runqlat/disable")["running"]
        assert not serving(ports["runqlat"])
        wait_for(lambda: active_targets(ports["prometheus"]) == {"syscalls", "biolatency"})
        started = descendants(run.proc.pid)
        held |= set().union(*(programs_of(pid) for pid in started))
    finally:
        output = run.ctrl_c()
    assert run.proc.returncode == 0, output
    assert f"{'syscalls':<12} http://127.0.0.1:{ports['syscalls']}/metrics" in output
    assert f"http://127.0.0.1:{ports['admin']}/" in output
    assert "dashboards/grafana/*.json: Grafana > Dashboards > New > Import" in output  # where, and how
    assert f"http://127.0.0.1:{ports['prometheus']}/alerts  (rules: " in output
    assert not [pid for pid in started if alive(pid)], "processes left running"
    assert not programs_left(held), "BPF programs left attached"
    assert set(Path(tempfile.gettempdir()).glob("lmp-run-*")) == before_tmp, "temporary files left"
    assert not list((tmp_path / "run").glob("*.pid")), "pidfiles left"


def test_run_without_the_admin_uses_static_targets(tmp_path):
    ports = {name: free_port() for name in (*COLLECTORS, "prometheus", "admin")}
    run = Run(write_config(tmp_path, ports, admin=False))
    try:
        run.wait_for_line("prometheus")
        wait_for(lambda: up_collectors(ports["prometheus"]) == set(COLLECTORS))
        started = descendants(run.proc.pid)
        assert len(started) == len(COLLECTORS) + 1  # the exporters and Prometheus, no admin
        held = set().union(*(programs_of(pid) for pid in started))
        assert wait_for(lambda: query(ports["prometheus"], "lmp_runqueue_latency_seconds_count > 0"))
    finally:
        output = run.ctrl_c()
    assert run.proc.returncode == 0, output
    assert "static targets" in output
    assert not [pid for pid in started if alive(pid)], "processes left running"
    assert not programs_left(held), "BPF programs left attached"


@pytest.mark.parametrize("admin, message", [
    (True, "collector biolatency failed: lmp exporter biolatency: cannot listen on 127.0.0.1:{port}"),
    (False, "collector biolatency exited with code 1; the others go on"),
])
def test_a_collector_that_cannot_start_does_not_stop_the_others(tmp_path, admin, message):
    ports = {name: free_port() for name in (*COLLECTORS, "prometheus", "admin")}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports["biolatency"]))
        busy.listen()
        run = Run(write_config(tmp_path, ports, admin=admin, prometheus=False))
        try:
            run.wait_for_line("LMP is running")
            assert serving(ports["syscalls"]) and serving(ports["runqlat"])
        finally:
            output = run.ctrl_c()
    assert message.format(port=ports["biolatency"]) in output
    assert run.proc.returncode == 0


def test_a_second_run_is_refused_while_the_first_holds_the_admin_port(tmp_path):
    ports = {name: free_port() for name in (*COLLECTORS, "prometheus", "admin")}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports["admin"]))
        busy.listen()
        result = subprocess.run([*LMP, "--config", str(write_config(tmp_path, ports)), "run"],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{ports['admin']}: Address already in use" in result.stderr


def test_an_admin_killed_with_sigkill_leaves_no_exporter_behind(tmp_path):
    ports = {name: free_port() for name in (*COLLECTORS, "prometheus", "admin")}
    run = Run(write_config(tmp_path, ports, prometheus=False))
    try:
        run.wait_for_line("LMP is running")
        admin = descendants(run.proc.pid)
        exporters = {pid for pid in admin if b"exporter" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")}
        assert len(exporters) == len(COLLECTORS)
        for pid in admin - exporters:  # gunicorn's master and worker, at once: no worker_exit runs
            os.kill(pid, signal.SIGKILL)
        run.wait_for_line("the admin service exited")
        run.proc.wait(timeout=60)
    finally:
        output = run.ctrl_c() if run.proc.poll() is None else run.output
    assert run.proc.returncode == 1, output
    assert not [pid for pid in exporters if alive(pid)], "exporters left running"
    assert not any(serving(ports[name]) for name in COLLECTORS)
