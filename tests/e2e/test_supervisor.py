"""`lmp run`'s supervisor with real exporter processes, driven through the admin's API: enable and disable
(the API answers once the change is done), a SIGKILLed exporter comes back with backoff, and function
components managed the same way, their policy changed through the API, connguard's refusals in the audit
log."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporters._lib.serving import answers
from tests.conftest import Scrape, connect_from, datagrams_received, free_ports, send_datagrams
from tests.lmprun import Api, Run, serving, wait_for

OPERATOR = ("ops", "an-operator-password")


@dataclass
class Stack:
    ports: dict[str, int]
    config: Path
    admin: Api  # the first admin's session
    ops: Api  # an operator's
    run: Run


def started(tmp_path: Path, collectors: dict[str, bool]) -> Iterator[Stack]:
    """`lmp run` (no Prometheus) with these collectors, enabled or not; stopped with Ctrl-C afterwards."""
    ports = free_ports((*collectors, "admin"))
    config = tmp_path / "lmp.yaml"
    config.write_text(
        f"disable_defaults: true\nprometheus: {{enabled: false}}\nadmin: {{listen: '127.0.0.1:{ports['admin']}', data_dir: '{tmp_path / 'data'}', "
        f"run_dir: '{tmp_path / 'run'}'}}\ncollectors:\n" + "".join(
            f"  {name}:\n    enabled: {str(on).lower()}\n    listen: 127.0.0.1:{ports[name]}\n"
            for name, on in collectors.items()))
    run = Run(config)
    try:
        password = run.wait_for_line("log in as admin, password").split("password ")[1].split()[0]
        admin = Api(ports["admin"], "admin", password)
        admin.call("POST", "/users", {"name": OPERATOR[0], "password": OPERATOR[1], "role": "operator"})
        yield Stack(ports, config, admin, Api(ports["admin"], *OPERATOR), run)
    finally:
        output = run.ctrl_c()
    assert run.proc.returncode == 0, output


@pytest.fixture
def collectors(tmp_path: Path) -> Iterator[Stack]:
    yield from started(tmp_path, {"syscalls": True, "runqlat": False})


def targets(stack: Stack) -> set[str]:
    return {g["labels"]["collector"] for g in stack.ops.call("GET", "/sd")}


def test_enable_disable_and_a_crashed_exporter(collectors):
    stack, ports = collectors, collectors.ports
    assert serving(ports["syscalls"]) and not serving(ports["runqlat"])
    enabled = stack.ops.call("POST", "/components/runqlat/enable")
    assert enabled["enabled"] and enabled["running"]  # answered once it runs
    assert "enabled: true" in stack.config.read_text().split("runqlat:")[1]
    wait_for(lambda: serving(ports["runqlat"]), timeout=10)
    groups = stack.ops.call("GET", "/sd")
    assert {g["labels"]["collector"] for g in groups} == {"syscalls", "runqlat"}
    assert {t for g in groups for t in g["targets"]} == {f"127.0.0.1:{ports[n]}" for n in ("syscalls", "runqlat")}

    disabled = stack.ops.call("POST", "/components/runqlat/disable")
    assert disabled["running"] is False and not serving(ports["runqlat"])  # its process ended, its port closed
    assert "runqlat" not in targets(stack)

    pid = stack.ops.call("GET", "/components/syscalls")["pid"]
    os.kill(pid, signal.SIGKILL)
    # Down but enabled: still a target, so that Prometheus records up == 0 for it.
    assert "syscalls" in targets(stack)
    wait_for(lambda: stack.ops.call("GET", "/components/syscalls")["restarts"] == 1, timeout=30)
    wait_for(lambda: serving(ports["syscalls"]), timeout=30)
    state = stack.ops.call("GET", "/components/syscalls")
    assert state["running"] and state["pid"] != pid and "code -9" in state["last_error"]


def test_a_config_broken_by_hand_leaves_the_last_good_one_running(collectors):
    """A YAML tag (refused before anything is built from it) in a file that would also stop syscalls."""
    stack = collectors
    pid = stack.ops.call("GET", "/components/syscalls")["pid"]
    good = stack.config.read_text()
    stack.config.write_text(good.replace("enabled: true", "enabled: !!bool false") + "\n")
    stack.run.wait_for_line("the config cannot be used, the last good one stays", timeout=30)
    assert serving(stack.ports["syscalls"])
    assert refused(stack.ops, "GET", "/components/syscalls") == 409  # the API says where the file is broken
    stack.config.write_text(good)
    wait_for(lambda: stack.ops.call("GET", "/components/syscalls")["pid"] == pid, timeout=10)  # never restarted


@pytest.fixture
def functions(tmp_path: Path) -> Iterator[Stack]:
    yield from started(tmp_path, {"netguard": False, "connguard": False})


def applied_policies(port: int) -> float:
    scrape = Scrape({f.name: f for f in text_string_to_metric_families(
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())})
    return scrape.value("lmp_exporter_policy_reloads_total", 0.0, result="applied")


def refused(api: Api, method: str, path: str, body: dict | None = None) -> int:
    try:
        api.call(method, path, body)
    except urllib.error.HTTPError as err:
        return err.code
    return 200


def test_connguard_through_the_api_and_its_refusals_in_the_audit_log(functions, cgroup):
    stack, ports = functions, functions.ports
    group, group_path = cgroup
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        target = f"127.0.0.1:{listener.getsockname()[1]}"
        assert stack.admin.call("POST", "/components/connguard/enable")["running"]
        wait_for(lambda: serving(ports["connguard"]), timeout=30)  # its first policy read: the next is a reload
        assert refused(stack.ops, "PUT", "/components/connguard/policy", {}) == 403
        policy = {"mode": "enforce", "cgroups": [group_path],
                 "destinations": [{"cidr": "127.0.0.1", "ports": [listener.getsockname()[1]]}]}
        stack.admin.call("PUT", "/components/connguard/policy", policy)
        wait_for(lambda: applied_policies(ports["connguard"]) == 1, timeout=30)  # the running component, no restart
        pid, comm, outcome = connect_from(group, target)
        assert outcome == {target: "EPERM"}

    def logged() -> bool:
        events = stack.admin.call("GET", "/audit")
        return ("connguard", "refused connect", f"{target} by pid {pid} ({comm}) in {group_path}") in [
            (e["actor"], e["action"], e["target"]) for e in events]
    wait_for(logged, timeout=30)
    assert stack.ops.call("POST", "/components/connguard/disable")["running"] is False
    assert not subprocess.run(["bpftool", "-j", "cgroup", "show", str(group)], capture_output=True,
                              text=True).stdout.strip("[]\n")


def test_netguard_through_the_api_drops_what_its_new_policy_says(functions, veth_pair):
    stack, ports, pair = functions, functions.ports, veth_pair
    assert stack.ops.call("POST", "/components/netguard/enable")["running"]
    wait_for(lambda: serving(ports["netguard"]), timeout=30)  # its first policy read: the next is a reload
    receiver = pair.receiver()
    policy = {"mode": "enforce", "interfaces": [pair.interface], "blocklist": [pair.PEER_V4[0]]}
    stack.admin.call("PUT", "/components/netguard/policy", policy)
    wait_for(lambda: applied_policies(ports["netguard"]) == 1, timeout=30)
    send_datagrams(pair.sender(pair.PEER_V4[0]), receiver, 100)
    send_datagrams(pair.sender(pair.PEER_V4[1]), receiver, 100)
    assert datagrams_received(receiver) == 100
    assert stack.ops.call("POST", "/components/netguard/disable")["running"] is False
    assert pair.xdp_programs() == []
    assert answers(f"http://127.0.0.1:{ports['admin']}/api/v1/health")
