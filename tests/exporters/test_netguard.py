"""netguard against real traffic: UDP from a peer network namespace over a veth pair into a guarded one,
both made by the test. Dropped packets must never arrive and must all be counted; allowed ones must all
arrive; the rate limit must hold to 10% over whole seconds; a new policy must apply without a reload or a
lost allowed packet; and a SIGKILLed exporter must leave no XDP program behind."""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import (
    PAYLOAD,
    Scrape,
    VethPair,
    bpf_program_ids,
    check_self_metrics,
    datagrams_received,
    delta,
    free_port,
    programs_left,
    run_lmp,
    send_datagrams,
)

PACKETS = 1000
FRAME = {4: 14 + 20 + 8 + len(PAYLOAD), 6: 14 + 40 + 8 + len(PAYLOAD)}  # Ethernet + IP + UDP + payload
NOISE = 20  # packets the namespaces send on their own (IPv6 router solicitations, MLD) while a test runs
LEFTOVER = Path(__file__).parent / "fixtures" / "leftover.bpf.c"


def write_config(path: Path, pair: VethPair, **policy: object) -> Path:
    """A config whose netguard entry guards the pair's guarded end (JSON is YAML). Written to a new file
    moved into place, as the admin writes it."""
    doc = {"collectors": {"netguard": {"enabled": False, "listen": "127.0.0.1:1",
                                       "policy": {"interfaces": [pair.interface], **policy}}}}
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)
    return path


def settled(guard, name: str, before: Scrape, expected: float, **labels: str) -> Scrape:  # type: ignore[no-untyped-def]
    """Scrape until the series has grown by `expected` (or two seconds have passed)."""
    deadline = time.monotonic() + 2
    while True:
        after = guard.scrape()
        if after.value(name, 0.0, **labels) - before.value(name, 0.0, **labels) >= expected \
                or time.monotonic() > deadline:
            return after
        time.sleep(0.05)


def applied(guard, result: str = "applied", count: float = 1) -> None:  # type: ignore[no-untyped-def]
    """Wait until the exporter reports a new policy applied (or refused)."""
    deadline = time.monotonic() + 5
    while guard.scrape().value("lmp_exporter_policy_reloads_total", result=result) < count:
        assert time.monotonic() < deadline, f"the new policy was not {result}: {guard.log()}"
        time.sleep(0.1)


@pytest.mark.parametrize("version", [4, 6], ids=["ipv4", "ipv6"])
def test_blocked_source_is_dropped_and_counted_an_allowed_one_passes(exporter, veth_pair, tmp_path, version):
    pair = veth_pair
    blocked, allowed = (pair.PEER_V4 if version == 4 else pair.PEER_V6)
    rule = f"{blocked}/{32 if version == 4 else 128}"
    guard = exporter("netguard", config=write_config(tmp_path / "lmp.yaml", pair, mode="enforce",
                                                     blocklist=["192.0.2.0/24", rule, "2001:db8::/32"]))
    assert [p["name"] for p in pair.xdp_programs()] == ["netguard"]
    check_self_metrics(guard.scrape(), function=True)
    receiver = pair.receiver(socket.AF_INET6 if version == 6 else socket.AF_INET)
    drop = {"interface": pair.interface, "verdict": "drop", "reason": "blocklist", "rule": rule}
    passed = {"interface": pair.interface, "verdict": "pass", "reason": "allowed", "rule": ""}

    before = guard.scrape()
    send_datagrams(pair.sender(blocked), receiver, PACKETS)
    after = settled(guard, "lmp_netguard_packets_total", before, PACKETS, **drop)
    assert datagrams_received(receiver) == 0
    assert delta(before, after, "lmp_netguard_packets_total", **drop) == PACKETS
    assert delta(before, after, "lmp_netguard_bytes_total", **drop) == PACKETS * FRAME[version]

    send_datagrams(pair.sender(allowed), receiver, PACKETS)
    last = settled(guard, "lmp_netguard_packets_total", after, PACKETS, **passed)
    assert datagrams_received(receiver) == PACKETS
    assert PACKETS <= delta(after, last, "lmp_netguard_packets_total", **passed) <= PACKETS + NOISE
    assert delta(after, last, "lmp_netguard_packets_total", **drop) == 0


def test_observe_mode_drops_nothing_and_counts_what_it_would(exporter, veth_pair, tmp_path):
    pair = veth_pair
    rule = f"{pair.PEER_V4[0]}/32"
    guard = exporter("netguard", config=write_config(tmp_path / "lmp.yaml", pair, mode="observe", blocklist=[rule]))
    receiver = pair.receiver()
    would = {"interface": pair.interface, "verdict": "would_drop", "reason": "blocklist", "rule": rule}
    before = guard.scrape()
    send_datagrams(pair.sender(pair.PEER_V4[0]), receiver, PACKETS)
    after = settled(guard, "lmp_netguard_packets_total", before, PACKETS, **would)
    assert datagrams_received(receiver) == PACKETS
    assert delta(before, after, "lmp_netguard_packets_total", **would) == PACKETS
    assert after.value("lmp_netguard_packets_total", 0.0, verdict="drop") == 0


class Stream(threading.Thread):
    """UDP datagrams at a steady rate, paced against absolute deadlines (a late send does not push the
    later ones back), until stopped; `sent` counts them."""

    def __init__(self, sender: socket.socket, destination: tuple, rate: float) -> None:
        super().__init__(daemon=True)
        self.sender, self.destination, self.rate = sender, destination, rate
        self.stopping = threading.Event()
        self.sent = 0

    def run(self) -> None:
        start = time.monotonic()
        while not self.stopping.is_set():
            wait = start + self.sent / self.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.sender.sendto(PAYLOAD, self.destination)
            self.sent += 1

    def stop(self) -> int:
        self.stopping.set()
        self.join(timeout=10)
        return self.sent


def test_rate_limit_lets_through_its_rate_of_a_faster_stream(exporter, veth_pair, tmp_path):
    pair = veth_pair
    guard = exporter("netguard", config=write_config(tmp_path / "lmp.yaml", pair, mode="enforce",
                                                     rate_limit={"packets_per_second": 200, "burst": 10}))
    receiver = pair.receiver()
    stream = Stream(pair.sender(pair.PEER_V4[1]), receiver.getsockname(), 2000)
    labels = {"interface": pair.interface, "rule": ""}
    stream.start()
    try:
        time.sleep(1.0)  # past the burst: from here on the bucket refills at the rate only
        first, t1 = guard.scrape(), time.monotonic()
        time.sleep(4.0)
        last, t2 = guard.scrape(), time.monotonic()
    finally:
        sent = stream.stop()
    seconds = t2 - t1
    passed = delta(first, last, "lmp_netguard_packets_total", verdict="pass", reason="allowed", **labels) / seconds
    dropped = delta(first, last, "lmp_netguard_packets_total", verdict="drop", reason="rate_limit", **labels) / seconds
    assert sent > 9000, f"the stream managed only {sent} packets"
    assert 180 <= passed <= 220, f"{passed:.1f} packets/s passed of {passed + dropped:.0f}/s"
    assert 1500 <= passed + dropped <= 2200, f"the stream ran at {passed + dropped:.0f} packets/s, not 2000"


def test_a_rule_added_at_run_time_applies_without_a_reload_or_a_lost_allowed_packet(exporter, veth_pair, tmp_path):
    pair = veth_pair
    config = write_config(tmp_path / "lmp.yaml", pair, mode="enforce", blocklist=["192.0.2.0/24"])
    guard = exporter("netguard", config=config)
    program = pair.xdp_programs()
    blocked_rx, allowed_rx = pair.receiver(), pair.receiver()
    stream = Stream(pair.sender(pair.PEER_V4[1]), allowed_rx.getsockname(), 1000)
    stream.start()
    try:
        send_datagrams(pair.sender(pair.PEER_V4[0]), blocked_rx, 100)
        assert datagrams_received(blocked_rx) == 100  # not listed yet
        write_config(config, pair, mode="enforce", blocklist=["192.0.2.0/24", f"{pair.PEER_V4[0]}/32"])
        applied(guard)
        send_datagrams(pair.sender(pair.PEER_V4[0]), blocked_rx, 100)
        assert datagrams_received(blocked_rx) == 0
    finally:
        sent = stream.stop()
    assert datagrams_received(allowed_rx) == sent  # every allowed packet through the change
    assert pair.xdp_programs() == program  # the same program, never detached or reloaded
    scrape = guard.scrape()
    assert scrape.value("lmp_netguard_packets_total", verdict="drop", rule=f"{pair.PEER_V4[0]}/32") == 100
    assert scrape.value("lmp_exporter_policy_current") == 1


def test_a_bad_policy_is_refused_and_the_policy_in_force_stays(exporter, veth_pair, tmp_path):
    pair = veth_pair
    config = write_config(tmp_path / "lmp.yaml", pair, mode="enforce", blocklist=[pair.PEER_V4[0]])
    guard = exporter("netguard", config=config)
    receiver = pair.receiver()
    good = config.read_text()
    for refused, bad in enumerate([good.replace(f'"{pair.PEER_V4[0]}"', '"10.213.0.300/32"'),
                                   good.replace(pair.interface, f"{pair.guarded}/nosuch0"),
                                   good.replace('"policy": {', '"policy": {"rate_limit": {"packets_per_second": -5}, ')],
                                  start=1):
        tmp = config.with_name("new.yaml")
        tmp.write_text(bad)
        os.replace(tmp, config)
        applied(guard, "refused", refused)
        send_datagrams(pair.sender(pair.PEER_V4[0]), receiver, 50)
        assert datagrams_received(receiver) == 0, f"the old rule stopped dropping after {bad}"
    assert guard.scrape().value("lmp_exporter_policy_current") == 0
    log = guard.log()
    assert "10.213.0.300/32' is not an IPv4 or IPv6 network" in log
    assert f"no network interface 'nosuch0' in network namespace {pair.guarded}" in log
    assert "packets_per_second: -5 is less than the minimum of 1" in log


@pytest.mark.parametrize("interface, reason", [
    ("{guarded}/nosuch0", "no network interface 'nosuch0' in network namespace {guarded}"),
    ("lmp-no-such-netns/veth0", "no network namespace 'lmp-no-such-netns'"),
])
def test_a_bad_policy_at_start_exits_2_with_the_reason_and_attaches_nothing(veth_pair, tmp_path, interface, reason):
    before = bpf_program_ids()
    config = tmp_path / "lmp.yaml"
    config.write_text(json.dumps({"collectors": {"netguard": {"listen": "127.0.0.1:1", "policy": {
        "interfaces": [interface.format(guarded=veth_pair.guarded)]}}}}))
    result = run_lmp("--config", str(config), "exporter", "netguard", "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2, result.stderr
    assert reason.format(guarded=veth_pair.guarded) in result.stderr
    assert not programs_left(bpf_program_ids() - before) and veth_pair.xdp_programs() == []


def test_sigkill_leaves_no_xdp_program_and_traffic_flows_again(exporter, veth_pair, tmp_path):
    pair = veth_pair
    guard = exporter("netguard", config=write_config(tmp_path / "lmp.yaml", pair, mode="enforce",
                                                     blocklist=[pair.PEER_V4[0]]))
    receiver = pair.receiver()
    send_datagrams(pair.sender(pair.PEER_V4[0]), receiver, 50)
    assert datagrams_received(receiver) == 0 and len(pair.xdp_programs()) == 1
    guard.kill()
    deadline = time.monotonic() + 5
    while pair.xdp_programs():
        assert time.monotonic() < deadline, f"XDP program still attached after SIGKILL: {pair.xdp_programs()}"
        time.sleep(0.1)
    send_datagrams(pair.sender(pair.PEER_V4[0]), receiver, 50)
    assert datagrams_received(receiver) == 50


@pytest.mark.usefixtures("bcc_headers")
def test_a_leftover_attached_by_netlink_is_removed_before_attaching(exporter, veth_pair, tmp_path):
    """An XDP program named like ours, attached the way BCC's attach_xdp does (netlink, which outlives its
    process), is what an older LMP would leave; netguard removes it and attaches its own through a link."""
    from bcc import BPF

    from exporters._lib.function.netns import entered
    pair = veth_pair
    old = BPF(src_file=str(LEFTOVER).encode())
    with entered(pair.guarded):
        BPF.attach_xdp(b"veth0", old.load_func(b"netguard", BPF.XDP), 1 << 1)  # generic mode
    old.cleanup()  # our descriptors close; the netlink attachment stays
    leftover = pair.xdp_programs()
    assert [p["name"] for p in leftover] == ["netguard"]
    guard = exporter("netguard", config=write_config(tmp_path / "lmp.yaml", pair, blocklist=[]))
    now = pair.xdp_programs()
    assert len(now) == 1 and now[0]["id"] != leftover[0]["id"] and now[0]["id"] in guard.programs


@pytest.mark.usefixtures("bcc_headers")
def test_an_interface_with_another_tools_xdp_program_is_refused_and_left_alone(veth_pair, tmp_path):
    from bcc import BPF

    from exporters._lib.function.netns import entered
    pair = veth_pair
    other = BPF(src_file=str(LEFTOVER).encode())
    with entered(pair.guarded):
        BPF.attach_xdp(b"veth0", other.load_func(b"other_xdp", BPF.XDP), 1 << 1)
    other.cleanup()
    config = write_config(tmp_path / "lmp.yaml", pair)
    result = run_lmp("--config", str(config), "exporter", "netguard", "--listen", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2, result.stderr
    assert f"interface {pair.interface} already has an XDP program" in result.stderr
    assert [p["name"] for p in pair.xdp_programs()] == ["other_xdp"]
