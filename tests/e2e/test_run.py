"""`lmp run` end to end: its spawner forking the exporters and the admin, a real Prometheus finding them
through the admin's service discovery, a collector enabled and disabled through the API while Prometheus
follows, a crashed admin restarted with the exporters untouched, and Ctrl-C or a SIGKILL leaving nothing
behind. The same without the admin, with static targets."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from exporters._lib.serving import answers
from tests.conftest import LMP, free_ports, programs_left, programs_of
from tests.lmprun import Api, Run, active_targets, alive, descendants, query, serving, up_collectors, wait_for

COLLECTORS = ("syscalls", "runqlat", "biolatency")


def write_config(tmp_path: Path, ports: dict[str, int], admin: bool = True, prometheus: bool = True,
                 disabled: tuple[str, ...] = ()) -> Path:
    lines = ["disable_defaults: true", "prometheus:", f"  enabled: {str(prometheus).lower()}", f"  listen: 127.0.0.1:{ports['prometheus']}",
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
    ports = free_ports((*COLLECTORS, "prometheus", "admin"))
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
    ports = free_ports((*COLLECTORS, "prometheus", "admin"))
    run = Run(write_config(tmp_path, ports, admin=False))
    try:
        run.wait_for_line("prometheus")
        wait_for(lambda: up_collectors(ports["prometheus"]) == set(COLLECTORS))
        started = descendants(run.proc.pid)
        # The launcher, the exporters and Prometheus, each named after what it is; no admin.
        assert sorted(comm(pid) for pid in started) == sorted(["lmp-run", "prometheus", *(f"lmp-{c}" for c in COLLECTORS)])
        held = set().union(*(programs_of(pid) for pid in started))
        assert wait_for(lambda: query(ports["prometheus"], "lmp_runqueue_latency_seconds_count > 0"))
    finally:
        output = run.ctrl_c()
    assert run.proc.returncode == 0, output
    assert "static targets" in output
    assert not [pid for pid in started if alive(pid)], "processes left running"
    assert not programs_left(held), "BPF programs left attached"


@pytest.mark.parametrize("admin", [True, False])
def test_a_collector_that_cannot_start_does_not_stop_the_others(tmp_path, admin):
    message = "collector biolatency failed: lmp exporter biolatency: cannot listen on 127.0.0.1:{port}"
    ports = free_ports((*COLLECTORS, "prometheus", "admin"))
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
    ports = free_ports((*COLLECTORS, "prometheus", "admin"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports["admin"]))
        busy.listen()
        result = subprocess.run([*LMP, "--config", str(write_config(tmp_path, ports)), "run"],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{ports['admin']}: Address already in use" in result.stderr


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def by_name(root: int) -> dict[str, int]:
    return {comm(pid): pid for pid in descendants(root) if alive(pid)}


def test_a_crashed_admin_is_restarted_and_the_exporters_run_on_untouched(tmp_path):
    ports = free_ports((*COLLECTORS, "prometheus", "admin"))
    run = Run(write_config(tmp_path, ports, prometheus=False))
    try:
        password = run.wait_for_line("log in as admin, password").split("password ")[1].split()[0]
        before = by_name(run.proc.pid)
        os.kill(before["lmp-admin"], signal.SIGKILL)
        run.wait_for_line("admin killed by signal SIGKILL (code -9); restarting it in 1 s")
        wait_for(lambda: answers(f"http://127.0.0.1:{ports['admin']}/api/v1/health"))
        api = Api(ports["admin"], "admin", password)  # back, same users
        assert api.call("GET", "/components/syscalls")["running"]
        after = by_name(run.proc.pid)
        assert after["lmp-admin"] != before["lmp-admin"]
        assert {n: after[n] for n in after if n != "lmp-admin"} == {n: before[n] for n in before if n != "lmp-admin"}
        assert all(serving(ports[name]) for name in COLLECTORS)
    finally:
        output = run.ctrl_c()
    assert run.proc.returncode == 0, output


@pytest.mark.parametrize("victim", ["lmp-run", None])  # the launcher, or `lmp run`'s first process (the spawner)
def test_lmp_run_killed_with_sigkill_leaves_no_process_or_program_behind(tmp_path, victim):
    ports = free_ports((*COLLECTORS, "prometheus", "admin"))
    run = Run(write_config(tmp_path, ports, prometheus=False))
    try:
        run.wait_for_line("LMP is running")
        started = by_name(run.proc.pid)
        held = set().union(*(programs_of(pid) for pid in started.values()))
        os.kill(started[victim] if victim else run.proc.pid, signal.SIGKILL)
        run.proc.wait(timeout=60)
    finally:
        if run.proc.poll() is None:
            run.ctrl_c()
    wait_for(lambda: not [pid for pid in started.values() if alive(pid)])
    assert not any(serving(ports[name]) for name in COLLECTORS)
    assert not programs_left(held), "BPF programs left attached"
