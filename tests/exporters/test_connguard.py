"""connguard against real processes: children moved into the test's own cgroup connect to loopback
listeners of the test. A denied destination must fail with EPERM for them and only for them; each
refusal must be counted and reported with its pid and command; a SIGKILLed exporter must leave no cgroup
program behind."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import wait_for
from tests.conftest import bpf_program_ids, connect_from, free_port, programs_left, run_lmp

LEFTOVER = Path(__file__).parent / "fixtures" / "leftover.bpf.c"
@pytest.fixture
def listeners() -> Iterator[dict[str, str]]:
    """Loopback TCP listeners: a, b on 127.0.0.1 and a6 on ::1 (a's port): name -> HOST:PORT."""
    a, b, a6 = socket.socket(), socket.socket(), socket.socket(socket.AF_INET6)
    try:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        a6.bind(("::1", a.getsockname()[1]))
        for s in (a, b, a6):
            s.listen(64)
        yield {"a": f"127.0.0.1:{a.getsockname()[1]}", "b": f"127.0.0.1:{b.getsockname()[1]}",
               "a6": f"[::1]:{a.getsockname()[1]}", "mapped": f"[::ffff:127.0.0.1]:{a.getsockname()[1]}",
               "port_a": a.getsockname()[1], "port_b": b.getsockname()[1]}  # type: ignore[misc]
    finally:
        for s in (a, b, a6):
            s.close()


def write_config(path: Path, group_path: str, **policy: object) -> Path:
    doc = {"collectors": {"connguard": {"enabled": False, "listen": "127.0.0.1:1",
                                        "policy": {"cgroups": [group_path], **policy}}}}
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)
    return path


def events(guard, count: int) -> list[dict]:  # type: ignore[no-untyped-def]
    """The first `count` events: the exporter drains the ring buffer on a schedule, so they may take a moment."""
    def received() -> list[dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{guard.port}/events?after=0", timeout=10) as response:
            return json.load(response)["events"]
    wait_for(lambda: len(received()) >= count, f"{count} events")
    time.sleep(0.3)  # one more drain: an event beyond `count` would show now
    return received()


def cgroup_programs(group: Path) -> list[dict]:
    out = subprocess.run(["bpftool", "-j", "cgroup", "show", str(group)], capture_output=True, text=True).stdout
    return json.loads(out.strip() or "[]")


def test_a_denied_destination_is_eperm_in_the_cgroup_only_and_each_refusal_is_reported(exporter, cgroup, listeners,
                                                                                       tmp_path):
    group, group_path = cgroup
    port = listeners["port_a"]
    guard = exporter("connguard", config=write_config(tmp_path / "lmp.yaml", group_path, mode="enforce", destinations=[
        {"cidr": "127.0.0.0/8", "ports": [port]}, {"cidr": "::1", "ports": [port]}]))
    assert {p["attach_type"] for p in cgroup_programs(group)} == {"cgroup_inet4_connect", "cgroup_inet6_connect"}
    pid, comm, inside = connect_from(group, listeners["a"], listeners["a6"], listeners["mapped"], listeners["b"])
    assert inside == {listeners["a"]: "EPERM", listeners["a6"]: "EPERM", listeners["mapped"]: "EPERM",
                      listeners["b"]: "ok"}
    _, _, outside = connect_from(None, listeners["a"], listeners["a6"], listeners["b"])
    assert set(outside.values()) == {"ok"}

    scrape = guard.scrape()
    refusals = {"cgroup": group_path, "verdict": "refused"}
    assert scrape.value("lmp_connguard_refusals_total", destination=listeners["a"], **refusals) == 2  # and mapped
    assert scrape.value("lmp_connguard_refusals_total", destination=listeners["a6"], **refusals) == 1
    assert scrape.value("lmp_connguard_connects_total", cgroup=group_path, verdict="refused") == 3
    assert scrape.value("lmp_connguard_connects_total", cgroup=group_path, verdict="allowed") == 1
    assert [(e["pid"], e["comm"], e["cgroup"], e["destination"], e["verdict"]) for e in events(guard, 3)] == [
        (pid, comm, group_path, listeners["a"], "refused"), (pid, comm, group_path, listeners["a6"], "refused"),
        (pid, comm, group_path, listeners["a"], "refused")]


def test_policy_allow_refuses_every_destination_not_listed(exporter, cgroup, listeners, tmp_path):
    group, group_path = cgroup
    exporter("connguard", config=write_config(tmp_path / "lmp.yaml", group_path, mode="enforce", listed="allow",
                                              destinations=[{"cidr": "127.0.0.1", "ports": [listeners["port_b"]]}]))
    _, _, inside = connect_from(group, listeners["a"], listeners["b"], listeners["a6"])
    assert inside == {listeners["a"]: "EPERM", listeners["b"]: "ok", listeners["a6"]: "EPERM"}
    child = group / "child"  # a service's sub-cgroup: its processes are guarded too
    child.mkdir()
    try:
        _, _, below = connect_from(child, listeners["a"], listeners["b"])
    finally:
        child.rmdir()
    assert below == {listeners["a"]: "EPERM", listeners["b"]: "ok"}


def test_observe_mode_refuses_nothing_and_reports_what_it_would(exporter, cgroup, listeners, tmp_path):
    group, group_path = cgroup
    guard = exporter("connguard", config=write_config(tmp_path / "lmp.yaml", group_path, mode="observe",
                                                      destinations=[{"cidr": "127.0.0.1", "ports": [listeners["port_a"]]}]))
    pid, _, inside = connect_from(group, listeners["a"], listeners["b"])
    assert set(inside.values()) == {"ok"}
    scrape = guard.scrape()
    assert scrape.value("lmp_connguard_refusals_total", cgroup=group_path, destination=listeners["a"],
                        verdict="would_refuse") == 1
    assert scrape.value("lmp_connguard_connects_total", 0.0, verdict="refused") == 0
    assert [(e["pid"], e["verdict"]) for e in events(guard, 1)] == [(pid, "would_refuse")]


def test_a_bad_policy_is_refused_and_the_policy_in_force_stays(exporter, cgroup, listeners, tmp_path):
    group, group_path = cgroup
    good = {"mode": "enforce", "destinations": [{"cidr": "127.0.0.1", "ports": [listeners["port_a"]]}]}
    config = write_config(tmp_path / "lmp.yaml", group_path, **good)
    guard = exporter("connguard", config=config)
    bad_policies = [("malformed CIDR", {**good, "destinations": [{"cidr": "127.0.0.1/33"}]}, "is not an IPv4 or IPv6 network"),
                 ("port out of range", {**good, "destinations": [{"cidr": "127.0.0.1", "ports": [70000]}]},
                  "70000 is greater than the maximum of 65535"),
                 ("unknown cgroup", {**good, "cgroups": ["/lmp-no-such-cgroup"]}, "no cgroup '/lmp-no-such-cgroup'")]
    for refused, (what, policy, reason) in enumerate(bad_policies, start=1):
        cgroups = policy.pop("cgroups", [group_path])
        write_config(config, cgroups[0], **policy)
        wait_for(lambda: guard.scrape().value("lmp_exporter_policy_reloads_total", result="refused") == refused,
                 f"{what}: not refused: {guard.log()}")
        assert reason in guard.log(), what
        _, _, inside = connect_from(group, listeners["a"], listeners["b"])
        assert inside == {listeners["a"]: "EPERM", listeners["b"]: "ok"}, f"{what}: the policy in force changed"
    assert guard.scrape().value("lmp_exporter_policy_current") == 0


def test_an_unknown_cgroup_at_start_exits_2_and_attaches_nothing(tmp_path):
    before = bpf_program_ids()
    config = write_config(tmp_path / "lmp.yaml", "/lmp-no-such-cgroup")
    result = run_lmp("--config", str(config), "exporter", "connguard", "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2, result.stderr
    assert "no cgroup '/lmp-no-such-cgroup' under the cgroup v2 hierarchy" in result.stderr
    assert not programs_left(bpf_program_ids() - before)


def test_sigkill_leaves_no_cgroup_program_and_connections_work_again(exporter, cgroup, listeners, tmp_path):
    group, group_path = cgroup
    guard = exporter("connguard", config=write_config(tmp_path / "lmp.yaml", group_path, mode="enforce",
                                                      destinations=[{"cidr": "127.0.0.1"}]))
    assert connect_from(group, listeners["a"])[2] == {listeners["a"]: "EPERM"}
    guard.kill()
    wait_for(lambda: not cgroup_programs(group), f"programs still attached after SIGKILL: {cgroup_programs(group)}")
    assert connect_from(group, listeners["a"])[2] == {listeners["a"]: "ok"}


@pytest.mark.usefixtures("bcc_headers")
def test_a_leftover_attached_by_prog_attach_is_removed_before_attaching(exporter, cgroup, tmp_path):
    from bcc import BPF
    group, group_path = cgroup
    old = BPF(src_file=str(LEFTOVER).encode())
    fd = os.open(group, os.O_RDONLY | os.O_DIRECTORY)
    try:
        BPF.attach_func(old.load_func(b"connguard4", BPF.CGROUP_SOCK_ADDR, attach_type=10), fd, 10)
    finally:
        os.close(fd)
    old.cleanup()  # the attachment stays: BPF_PROG_ATTACH holds the program, not our descriptor
    leftover = cgroup_programs(group)
    assert [p["name"] for p in leftover] == ["connguard4"]
    guard = exporter("connguard", config=write_config(tmp_path / "lmp.yaml", group_path))
    now = cgroup_programs(group)
    assert leftover[0]["id"] not in {p["id"] for p in now}
    assert {p["id"] for p in now} <= guard.programs and len(now) == 2


@pytest.mark.usefixtures("bcc_headers")
def test_a_cgroup_with_an_exclusive_program_is_refused_and_left_alone(cgroup, tmp_path):
    from bcc import BPF
    group, group_path = cgroup
    other = BPF(src_file=str(LEFTOVER).encode())
    fd = os.open(group, os.O_RDONLY | os.O_DIRECTORY)
    try:
        BPF.attach_func(other.load_func(b"other_connect", BPF.CGROUP_SOCK_ADDR, attach_type=10), fd, 10)  # exclusive
    finally:
        os.close(fd)
    other.cleanup()
    config = write_config(tmp_path / "lmp.yaml", group_path)
    result = run_lmp("--config", str(config), "exporter", "connguard", "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2, result.stderr
    assert f"cgroup {group_path} has a cgroup/connect4 program attached in exclusive mode" in result.stderr
    assert [p["name"] for p in cgroup_programs(group)] == ["other_connect"]
