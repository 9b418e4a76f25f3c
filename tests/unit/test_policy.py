"""Function components' policies: parsed from the config with line-precise errors, as their maps will hold
them; connguard's events as the audit log records them."""
from __future__ import annotations

import ipaddress

import pytest

from admin.audit_feed import MAX_ROWS, rows
from exporters._lib import btf, catalog, decoders, libbpf, paths
from exporters._lib.function import policy as policies
from exporters._lib.function.addresses import lmp_addr, trie_key
from exporters._lib.yamlfile import YamlError
from lmp import config as configs

SHIPPED = paths.DEFAULT_CONFIG.read_text()
NETGUARD_RULES = "      blocklist: []"  # the start of a line of the shipped config, replaced whole
CONNGUARD_RULES = "      destinations: []"


def load_with(tmp_path, old: str, new: str) -> configs.Config:
    line = old if "\n" in old else next(line for line in SHIPPED.splitlines() if line.startswith(old))
    path = tmp_path / "lmp.yaml"
    path.write_text(SHIPPED.replace(line, new, 1))
    return configs.load(path)


def line_of(text: str) -> int:
    return next(i for i, line in enumerate(SHIPPED.splitlines(), 1) if text in line)


@pytest.mark.parametrize("old, new, offset, reason", [
    (NETGUARD_RULES, "      blocklist: [192.0.2.0/24, 10.0.0.1/8]", 0,
     "collectors.netguard.policy.blocklist.1: 10.0.0.1/8 has host bits set: write 10.0.0.0/8"),
    (NETGUARD_RULES, "      blocklist:\n        - 192.0.2.0/24\n        - 300.1.1.1", 2,
     "blocklist.1: '300.1.1.1' is not an IPv4 or IPv6 network"),
    (NETGUARD_RULES, "      blocklist: []\n      rate_limit: {packets_per_second: 0}", 1,
     "rate_limit.packets_per_second: 0 is less than the minimum of 1"),
    ("      mode: observe", "      mode: enforcing", 0, "netguard.policy.mode: 'enforcing' is not one of"),
    (NETGUARD_RULES, "      blocklist: []\n      blocklists: []", 1, "'blocklists' was unexpected"),
    (CONNGUARD_RULES, "      destinations:\n        - {cidr: 127.0.0.1, ports: [80, 70000]}", 1,
     "destinations.0.ports.1: 70000 is greater than the maximum of 65535"),
    (CONNGUARD_RULES, "      destinations:\n        - {cidr: 127.0.0.1/8}", 1, "127.0.0.1/8 has host bits set"),
    (CONNGUARD_RULES, "      destinations:\n        - {ports: [80]}", 1, "'cidr' is a required property"),
])
def test_a_bad_policy_in_the_config_names_its_line_and_reason(tmp_path, old, new, offset, reason):
    with pytest.raises(YamlError) as err:
        load_with(tmp_path, old, new)
    assert reason in str(err.value)
    assert err.value.line == line_of(old.strip()) + offset, str(err.value)


def test_a_collector_takes_no_policy(tmp_path):
    with pytest.raises(YamlError, match="collector runqlat takes no policy"):
        load_with(tmp_path, "collectors:\n", "collectors:\n  runqlat:\n    policy: {}\n")


def test_a_netguard_policy_becomes_a_token_bucket_and_a_set_of_networks():
    spec = catalog.load("netguard")
    policy = policies.parse(spec, {"mode": "enforce", "interfaces": ["ns1/veth0"], "xdp_mode": "native",
                                  "blocklist": ["192.0.2.0/24", "192.0.2.0/24", "2001:db8::1"],
                                  "rate_limit": {"packets_per_second": 200, "burst": 10}})
    assert policy.enforce and policy.interfaces == ("ns1/veth0",) and policy.xdp_flags == 1 << 2
    assert policy.blocklist == {ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::1/128")}
    assert policy.interval_ns == 5_000_000 and policy.burst_ns == 9 * 5_000_000  # 10 packets back to back
    defaults = policies.parse(spec, {"rate_limit": {"packets_per_second": 1000}})
    assert not defaults.enforce and defaults.xdp_flags == 1 << 1 and defaults.burst_ns == 99 * 1_000_000


def test_a_connguard_policy_lists_each_port_of_each_network():
    spec = catalog.load("connguard")
    policy = policies.parse(spec, {"cgroups": ["/a"], "destinations": [
        {"cidr": "10.0.0.0/8", "ports": [5432, 6432]}, {"cidr": "::1"}]})
    assert not policy.enforce and not policy.allow_listed and policy.cgroups == ("/a",)
    assert policy.destinations == {(ipaddress.ip_network("10.0.0.0/8"), 5432), (ipaddress.ip_network("10.0.0.0/8"), 6432),
                                  (ipaddress.ip_network("::1/128"), None)}
    assert policies.parse(spec, {"listed": "allow", "mode": "enforce"}).allow_listed


@pytest.mark.parametrize("text", ["203.0.113.0/24", "2001:db8::/32", "0.0.0.0/0", "::/0", "10.1.2.3/32"])
def test_a_rule_as_the_map_holds_it_is_named_back_by_the_cidr_decoder(text):
    assert decoders.cidr(lmp_addr(ipaddress.ip_network(text))) == text


def test_destinations_in_network_byte_order():
    address = lmp_addr(ipaddress.ip_network("10.0.0.1/32"), 5432)
    assert address[:8] == bytes([4, 0, 0x15, 0x38, 10, 0, 0, 1])  # family, -, port 5432 big-endian, address
    assert decoders.endpoint(address) == "10.0.0.1:5432"
    assert decoders.endpoint(lmp_addr(ipaddress.ip_network("::1/128"), 8080)) == "[::1]:8080"
    obj = libbpf.open_file(catalog.load("connguard").object)  # the trie's key as the kernel code declares it
    try:
        port_key = btf.Types(libbpf.btf(obj)).struct("dest_port_key")
    finally:
        libbpf.close(obj)
    key = trie_key(port_key, ipaddress.ip_network("10.0.0.0/8"), 5432)
    # prefixlen counts the family byte, the port, then the network; the port is in network byte order
    assert port_key.get(key, "prefixlen") == 8 + 16 + 8 and port_key.get(key, "port") == b"\x15\x38"
    assert port_key.get(key, "addr")[:4] == bytes([10, 0, 0, 0])


def test_refusals_are_collapsed_and_capped_in_the_audit_log():
    event = {"verdict": "refused", "destination": "10.0.0.1:5432", "pid": 42, "comm": "psql", "cgroup": "/app"}
    assert rows("connguard", [event] * 3, 0) == [
        ("connguard", "refused connect", "10.0.0.1:5432 by pid 42 (psql) x3 in /app")]
    many = [{**event, "pid": pid} for pid in range(MAX_ROWS + 7)]
    out = rows("connguard", many, 5)
    assert len(out) == MAX_ROWS + 1 and out[-1] == ("connguard", "events not logged",
                                                     "12 more events; its metrics count them all")
    assert rows("connguard", [{**event, "verdict": "would_refuse"}], 0)[0][1] == "would refuse connect (observe)"
    assert all(len(target) <= 128 for _, _, target in rows("connguard", [{**event, "cgroup": "/x" * 200}], 0))
