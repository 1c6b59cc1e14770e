"""A client's network as a number: the one key every per-client-network limit uses.

Limits that exist to stop one client from taking everything (the front door's join and
room-creation buckets, the TURN nodes' allocation quota and failed-authentication budget)
count per network, not per address: one user holds a whole IPv6 /64 (and usually a /56 or
/48), and one IPv4 /24 is the granularity our logs may keep anyway (docs/architecture.md,
privacy). So an IPv4 address counts as its /24 and an IPv6 address as its /48; an
IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, what a dual-stack socket reports for an IPv4
peer) counts as its IPv4 /24, so one client is one network whichever socket it came in on.

The key is the truncated network as an integer, never the address, so tables keyed by it hold
no more than the logs may. IPv6 keys are offset past every IPv4 key so the families never
collide, and clients whose address is unknown or unparseable share :data:`UNKNOWN_NETWORK`:
hiding the address buys nothing.
"""

from __future__ import annotations

import ipaddress
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

IPV4_PREFIX: Final = 24
IPV6_PREFIX: Final = 48
UNKNOWN_NETWORK: Final = -1
_V4_SHIFT: Final = 32 - IPV4_PREFIX
_V6_SHIFT: Final = 128 - IPV6_PREFIX
_V6_OFFSET: Final = 1 << IPV4_PREFIX


def network_key(address: IPAddress | str | None) -> int:
    """The network ``address`` is counted as (its /24 or /48 as an integer, IPv4-mapped as
    IPv4); :data:`UNKNOWN_NETWORK` for None or text that is no IP address."""
    if isinstance(address, str):
        try:
            address = ipaddress.ip_address(address)
        except ValueError:
            return UNKNOWN_NETWORK
    if address is None:
        return UNKNOWN_NETWORK
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is None:
            return _V6_OFFSET + (int(address) >> _V6_SHIFT)
        address = mapped
    return int(address) >> _V4_SHIFT


__all__ = ["IPV4_PREFIX", "IPV6_PREFIX", "UNKNOWN_NETWORK", "IPAddress", "network_key"]
