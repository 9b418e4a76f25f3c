"""connguard's rules: parsed from their plain form (the config's collectors.connguard.rules, already valid
against the spec's schema) and written into the cgroup programs' maps while they run."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporters._lib import decoders
from exporters._lib.addresses import Network, network, trie_key
from exporters._lib.rules import RuleError

MAX_ENTRIES = 16384  # MAX_DESTINATIONS in connguard.bpf.c, for each of its two tries
VERDICTS = ("allowed", "refused", "would_refuse")

Destination = tuple[Network, int | None]  # a network and one port, or None for every port


@dataclass(frozen=True)
class Rules:
    enforce: bool
    allow_listed: bool  # policy allow
    cgroups: tuple[str, ...]
    destinations: frozenset[Destination]


def parse(raw: dict[str, Any]) -> Rules:
    """RuleError (with where in the rules) for a malformed CIDR or too many entries."""
    destinations: set[Destination] = set()
    for i, entry in enumerate(raw.get("destinations", [])):
        net = network(entry["cidr"], ("destinations", i, "cidr"))
        destinations.update((net, port) for port in entry.get("ports") or [None])
    for kind in ("any port", "port"):
        n = sum(1 for _, port in destinations if (port is None) == (kind == "any port"))
        if n > MAX_ENTRIES:
            raise RuleError(("destinations",), f"{n} destinations for {kind} rules; the kernel's map holds {MAX_ENTRIES}")
    return Rules(raw.get("mode", "observe") == "enforce", raw.get("policy", "deny") == "allow",
                 tuple(raw.get("cgroups", [])), frozenset(destinations))


def targets(rules: Rules) -> dict[str, int]:
    """The cgroups to attach both hooks to."""
    return {path: 0 for path in rules.cgroups}


def apply(bpf: Any, old: Rules | None, new: Rules) -> None:
    """New rules into the maps: new destinations, then the mode and policy, then the destinations no longer
    listed. A change of policy takes effect at the one write of the config entry."""
    tries = {None: bpf.get_table("connguard_destinations"), "port": bpf.get_table("connguard_destination_ports")}
    before = old.destinations if old else frozenset()

    def key(dest: Destination) -> tuple[Any, Any]:
        net, port = dest
        trie = tries["port" if port is not None else None]
        return trie, trie_key(trie.Key, net, port)

    for dest in new.destinations - before:
        trie, k = key(dest)
        trie[k] = trie.Leaf(1)
    config = bpf.get_table("connguard_config")
    config[config.Key(0)] = config.Leaf(int(new.enforce), int(new.allow_listed))
    for dest in before - new.destinations:
        trie, k = key(dest)
        del trie[k]


def event(raw: Any) -> dict[str, Any]:
    """One refusal from the ring buffer (struct refusal) as the admin's audit log records it."""
    whole, start = bytes(raw), type(raw).family.offset  # the destination: a struct lmp_addr, spelt out
    return {"pid": raw.pid, "comm": decoders.comm(bytes(raw.comm)), "cgroup": decoders.cgroups()(raw.cgroup),
            "destination": decoders.endpoint(whole[start:start + decoders.LMP_ADDR.size]),
            "verdict": VERDICTS[raw.verdict] if raw.verdict < len(VERDICTS) else str(raw.verdict)}
