"""Function components through the API: the catalog shows them as kind function with their hooks; their
a policy is read by viewers and replaced by admins, and a bad one is refused with the reason while the
config file stays as it was."""
from __future__ import annotations

import pytest

from lmp import config as configs


def test_the_catalog_shows_function_components(client, auth, config_file):
    components = {c["name"]: c for c in client.get("/api/v1/components", headers=auth.headers("view")).json}
    assert components["netguard"]["kind"] == "function" and components["netguard"]["hooks"] == ["xdp"]
    assert components["connguard"]["hooks"] == ["cgroup/connect4", "cgroup/connect6"]
    assert components["syscalls"]["kind"] == "collector"
    assert not components["netguard"]["enabled"] and components["connguard"]["listen"] == "127.0.0.1:9465"


def test_a_policy_is_read_replaced_audited_and_keeps_the_files_comments(client, auth, config_file):
    assert client.get("/api/v1/components/netguard/policy", headers=auth.headers("view")).json == {
        "mode": "observe", "interfaces": [], "blocklist": []}
    policy = {"mode": "enforce", "interfaces": ["lo"], "blocklist": ["203.0.113.0/24", "2001:db8::/32"],
             "rate_limit": {"packets_per_second": 1000, "burst": 50}}
    response = client.put("/api/v1/components/netguard/policy", json=policy, headers=auth.headers("root"))
    assert response.status_code == 200 and response.json == policy
    assert configs.load(config_file).collectors["netguard"].policy == policy
    assert "# Function components change what the kernel does" in config_file.read_text()
    events = client.get("/api/v1/audit", headers=auth.headers("root")).json
    assert ("root", "set policy", "netguard") in [(e["actor"], e["action"], e["target"]) for e in events]


@pytest.mark.parametrize("name, policy, reason", [
    ("netguard", {"blocklist": ["10.0.0.1/8"]}, "blocklist.0: 10.0.0.1/8 has host bits set: write 10.0.0.0/8"),
    ("netguard", {"blocklist": ["10.0.0.0/33"]}, "'10.0.0.0/33' is not an IPv4 or IPv6 network"),
    ("netguard", {"interfaces": ["lmpnosuch0"]}, "no network interface 'lmpnosuch0'"),
    ("netguard", {"interfaces": ["lmp-no-netns/eth0"]}, "no network namespace 'lmp-no-netns'"),
    ("netguard", {"mode": "drop"}, "mode: 'drop' is not one of ['observe', 'enforce']"),
    ("netguard", {"rate_limit": {"burst": 5}}, "'packets_per_second' is a required property"),
    ("connguard", {"destinations": [{"cidr": "::1", "ports": [0]}]}, "0 is less than the minimum of 1"),
    ("connguard", {"destinations": [{"cidr": "::1", "ports": [65536]}]}, "65536 is greater than the maximum of 65535"),
    ("connguard", {"cgroups": ["/lmp-no-such-cgroup"]}, "no cgroup '/lmp-no-such-cgroup'"),
    ("connguard", {"cgroups": ["/../etc"]}, "no cgroup '/../etc'"),
    ("connguard", {"listed": "allow", "extra": 1}, "'extra' was unexpected"),
])
def test_a_bad_policy_is_a_422_with_the_reason_and_nothing_changes(client, auth, config_file, name, policy, reason):
    before = config_file.read_text()
    response = client.put(f"/api/v1/components/{name}/policy", json=policy, headers=auth.headers("root"))
    assert response.status_code == 422, response.json
    assert reason in response.json["message"] and "the policy in force stays" in response.json["message"]
    assert config_file.read_text() == before


@pytest.mark.parametrize("body, code", [('["a list"]', 422), ("null", 422), ("{not json", 400)])
def test_a_body_that_is_not_an_object_is_a_4xx(client, auth, config_file, body, code):
    response = client.put("/api/v1/components/connguard/policy", data=body, content_type="application/json",
                          headers=auth.headers("root"))
    assert response.status_code == code and response.json["code"] == code


def test_collectors_have_no_policy_and_a_component_needs_no_entry(client, auth, config_file):
    assert client.get("/api/v1/components/syscalls/policy", headers=auth.headers("view")).status_code == 404
    text = config_file.read_text()
    config_file.write_text(text[:text.index("  netguard:\n")])  # no entry for netguard nor connguard
    assert client.get("/api/v1/components/netguard/policy", headers=auth.headers("view")).json == {}
    policy = {"mode": "observe", "interfaces": [], "blocklist": ["192.0.2.0/24"]}
    saved = client.put("/api/v1/components/netguard/policy", json=policy, headers=auth.headers("root"))
    assert saved.status_code == 200 and saved.json == policy  # the entry is made
    cfg = configs.load(config_file)
    assert cfg.collectors["netguard"].policy == policy and not cfg.collectors["netguard"].enabled  # spec's default
