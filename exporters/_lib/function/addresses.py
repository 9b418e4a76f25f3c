"""IP networks and addresses as the function components' policies give them and their BPF maps hold them.

Maps hold an address as struct lmp_addr (lmp.h), and the longest-prefix-match tries key it by family
then address, so that an IPv6 rule (even ::/0) never covers IPv4 traffic."""
from __future__ import annotations

import ipaddress
from typing import Any

from ..btf import Layout
from ..decoders import LMP_ADDR
from .policy import PolicyError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FAMILY = {4: 4, 6: 6}  # ip version -> LMP_IPV4 / LMP_IPV6
FAMILY_BITS = 8  # the family byte in front of a trie key's address


def network(text: Any, location: tuple[str | int, ...]) -> Network:
    """A CIDR ("203.0.113.0/24", "2001:db8::/32") or one address (a /32 or /128). Host bits set is an error,
    not silently cleared: "10.0.0.1/8" may be a typo for either 10.0.0.0/8 or 10.0.0.1/32."""
    try:
        return ipaddress.ip_network(str(text).strip(), strict=True)
    except ValueError as err:
        reason = str(err)
        if "host bits set" in reason:
            loose = ipaddress.ip_network(str(text).strip(), strict=False)
            reason = f"{text} has host bits set: write {loose} for the network, or the address alone"
        else:
            reason = f"{text!r} is not an IPv4 or IPv6 network (CIDR such as 192.0.2.0/24 or 2001:db8::/32)"
        raise PolicyError(location, reason) from None


def _bytes16(net: Network) -> bytes:
    return net.network_address.packed.ljust(16, b"\0")


def lmp_addr(net: Network, port: int = 0) -> bytes:
    """struct lmp_addr of a network (its prefix length) or of an address and port (a /32 or /128)."""
    return LMP_ADDR.pack(FAMILY[net.version], net.prefixlen if port == 0 else 0, port, _bytes16(net))


def trie_key(key: Layout, net: Network, port: int | None = None) -> bytes:
    """The key of a longest-prefix-match trie entry for `net`: {prefixlen, family, [port,] address}; the
    port (two bytes in network order, right after the family) makes a rule for one port of a network."""
    if port is None:
        return key.pack(prefixlen=FAMILY_BITS + net.prefixlen, family=FAMILY[net.version], addr=_bytes16(net))
    return key.pack(prefixlen=FAMILY_BITS + 16 + net.prefixlen, family=FAMILY[net.version],
                    port=port.to_bytes(2, "big"), addr=_bytes16(net))
