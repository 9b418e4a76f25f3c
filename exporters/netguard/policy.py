"""netguard's policy: parsed from its plain form (the config's collectors.netguard.policy, already valid
against the spec's schema) and written into the XDP program's maps while it runs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporters._lib.bpf import Loaded
from exporters._lib.function.addresses import Network, lmp_addr, network, trie_key
from exporters._lib.function.links import XDP_FLAGS

NS_PER_SECOND = 1_000_000_000


@dataclass(frozen=True)
class Policy:
    enforce: bool
    interfaces: tuple[str, ...]
    xdp_flags: int
    blocklist: frozenset[Network]
    interval_ns: int  # one token per interval; 0: no rate limit
    burst_ns: int  # how far ahead of now a source's bucket may be spent: (burst - 1) intervals


def parse(raw: dict[str, Any]) -> Policy:
    """PolicyError (with where in the policy) for a malformed CIDR; the schema has checked the rest."""
    blocklist = frozenset(network(text, ("blocklist", i)) for i, text in enumerate(raw.get("blocklist", [])))
    interval = burst = 0
    if "rate_limit" in raw:
        rate = raw["rate_limit"]["packets_per_second"]
        interval = max(1, round(NS_PER_SECOND / rate))
        burst = (raw["rate_limit"].get("burst", max(1, rate // 10)) - 1) * interval
    return Policy(raw.get("mode", "observe") == "enforce", tuple(raw.get("interfaces", [])),
                 XDP_FLAGS[raw.get("xdp_mode", "generic")], blocklist, interval, burst)


def targets(policy: Policy) -> dict[str, int]:
    """The interfaces to attach to, with the XDP mode flags of each."""
    return {interface: policy.xdp_flags for interface in policy.interfaces}


def apply(loaded: Loaded, old: Policy | None, new: Policy) -> None:
    """A new policy into the maps, in an order that never drops what both the old and the new policy allow:
    new blocklist entries, then the mode and rate, then the entries no longer listed."""
    trie, config = loaded.maps["netguard_blocklist"], loaded.maps["netguard_config"]
    before = old.blocklist if old else frozenset()
    for net in new.blocklist - before:
        trie.update(trie_key(trie.key, net), lmp_addr(net))
    config.update(bytes(4), config.value.pack(enforce=int(new.enforce), interval_ns=new.interval_ns,
                                              burst_ns=new.burst_ns))
    for net in before - new.blocklist:
        trie.delete(trie_key(trie.key, net))
    if old is None or (old.interval_ns, old.burst_ns) != (new.interval_ns, new.burst_ns):
        loaded.maps["netguard_rate"].clear()  # buckets filled at the old rate would be wrong at the new one
