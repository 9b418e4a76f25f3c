"""connguard's policy: parsed from its plain form (the config's collectors.connguard.policy, already valid
against the spec's schema) and written into the cgroup programs' maps while they run."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from exporters._lib import decoders
from exporters._lib.bpf import Loaded, Map
from exporters._lib.function.addresses import Network, network, trie_key
from exporters._lib.function.policy import PolicyError

MAX_ENTRIES = 16384  # MAX_DESTINATIONS in connguard.bpf.c, for each of its two tries
VERDICTS = ("allowed", "refused", "would_refuse")

Destination = tuple[Network, int | None]  # a network and one port, or None for every port


@dataclass(frozen=True)
class Policy:
    enforce: bool
    allow_listed: bool  # listed: allow
    cgroups: tuple[str, ...]
    destinations: frozenset[Destination]


def parse(raw: dict[str, Any]) -> Policy:
    """PolicyError (with where in the policy) for a malformed CIDR or too many entries."""
    destinations: set[Destination] = set()
    for i, entry in enumerate(raw.get("destinations", [])):
        net = network(entry["cidr"], ("destinations", i, "cidr"))
        destinations.update((net, port) for port in entry.get("ports") or [None])
    for kind in ("any port", "port"):
        n = sum(1 for _, port in destinations if (port is None) == (kind == "any port"))
        if n > MAX_ENTRIES:
            raise PolicyError(("destinations",), f"{n} destinations for {kind}; the kernel's map holds {MAX_ENTRIES}")
    return Policy(raw.get("mode", "observe") == "enforce", raw.get("listed", "deny") == "allow",
                 tuple(raw.get("cgroups", [])), frozenset(destinations))


def targets(policy: Policy) -> dict[str, int]:
    """The cgroups to attach both hooks to."""
    return {path: 0 for path in policy.cgroups}


def apply(loaded: Loaded, old: Policy | None, new: Policy) -> None:
    """A new policy into the maps: new destinations, then the mode and what the listed are (denied or
    allowed), then the destinations no longer listed. A change of either takes effect at the one write of
    the config entry."""
    tries = {None: loaded.maps["connguard_destinations"], "port": loaded.maps["connguard_destination_ports"]}
    before = old.destinations if old else frozenset()

    def key(dest: Destination) -> tuple[Map, bytes]:
        net, port = dest
        trie = tries["port" if port is not None else None]
        return trie, trie_key(trie.key, net, port)

    for dest in new.destinations - before:
        trie, k = key(dest)
        trie.update(k, b"\1")
    config = loaded.maps["connguard_config"]
    config.update(bytes(4), config.value.pack(enforce=int(new.enforce), allow_listed=int(new.allow_listed)))
    for dest in before - new.destinations:
        trie, k = key(dest)
        trie.delete(k)


def events(loaded: Loaded) -> Callable[[bytes], dict[str, Any]]:
    """Each refusal from the ring buffer (struct refusal) as the admin's audit log records it."""
    refusal = loaded.types.struct("refusal")
    start = refusal.fields["family"].offset  # the destination: a struct lmp_addr, spelt out from here

    def event(raw: bytes) -> dict[str, Any]:
        verdict = refusal.get(raw, "verdict")
        return {"pid": refusal.get(raw, "pid"), "comm": decoders.comm(refusal.get(raw, "comm")),
                "cgroup": decoders.cgroups()(refusal.get(raw, "cgroup")),
                "destination": decoders.endpoint(raw[start:start + decoders.LMP_ADDR.size]),
                "verdict": VERDICTS[verdict] if verdict < len(VERDICTS) else str(verdict)}
    return event
