"""Which addresses are ordinary public unicast, and which are special — with no exceptions.

Two parts of Regio depend on this answer: TURN must never relay to loopback, private, metadata
or other special addresses (relay abuse, CVE-2020-26262), and the front door must treat such a
client address as unlocatable (fail closed). Both first reduce an IPv6 address that carries an
IPv4 address (mapped, compatible, 6to4, NAT64, Teredo) to that IPv4 address, because that is
where packets really go.

The tables are explicit, from the IANA IPv4 and IPv6 Special-Purpose Address Registries, on
purpose: ``ipaddress.is_private`` changed between Python releases (CVE-2024-4032) and calls
100.64.0.0/10 neither private nor global.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4: Final = ipaddress.IPv4Network
_V6: Final = ipaddress.IPv6Network

#: Special-purpose IPv4 ranges, by the name used in counters and errors.
SPECIAL_IPV4: Final[tuple[tuple[ipaddress.IPv4Network, str], ...]] = (
    (_V4("0.0.0.0/8"), "this-network"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "cgnat"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.0.0/16"), "link-local"),  # includes cloud metadata 169.254.169.254
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "ietf-protocol"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "6to4-relay"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "benchmarking"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),  # includes broadcast 255.255.255.255
)

#: Special-purpose IPv6 ranges that do not embed an IPv4 address.
SPECIAL_IPV6: Final[tuple[tuple[ipaddress.IPv6Network, str], ...]] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("64:ff9b:1::/48"), "nat64-local"),
    (_V6("100::/64"), "discard"),
    (_V6("2001:2::/48"), "benchmarking"),
    (_V6("2001:10::/28"), "orchid"),
    (_V6("2001:20::/28"), "orchid"),
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("3fff::/20"), "documentation"),
    (_V6("5f00::/16"), "srv6"),
    (_V6("fc00::/7"), "unique-local"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("ff00::/8"), "multicast"),
)

_MAPPED = _V6("::ffff:0:0/96")
_COMPATIBLE = _V6("::/96")
_NAT64 = _V6("64:ff9b::/96")
_SIX_TO_FOUR = _V6("2002::/16")
_TEREDO = _V6("2001::/32")


@dataclass(frozen=True, slots=True)
class AddressClass:
    """What an address really is.

    ``effective`` is the address packets end up at: the embedded IPv4 address for IPv6 forms
    that carry one, otherwise the address itself. ``special`` names the special-purpose range
    ``effective`` falls in, or is None for ordinary global unicast.
    """

    address: IPAddress
    effective: IPAddress
    embedding: str | None
    special: str | None

    @property
    def is_global_unicast(self) -> bool:
        return self.special is None


def embedded_ipv4(ip: IPAddress) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries, and the form it uses, if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip in _MAPPED:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "ipv4-mapped"
    if ip in _COMPATIBLE and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "ipv4-compatible"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "nat64"
    if ip in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF), "6to4"
    if ip in _TEREDO:
        # RFC 4380: the client's public IPv4 address is the last 32 bits, inverted.
        return ipaddress.IPv4Address(~int(ip) & 0xFFFFFFFF), "teredo"
    return None


def special_purpose(ip: IPAddress) -> str | None:
    """The special-purpose range ``ip`` itself is in (no embedding applied), or None."""
    table = SPECIAL_IPV4 if isinstance(ip, ipaddress.IPv4Address) else SPECIAL_IPV6
    for network, name in table:
        if ip in network:
            return name
    return None


def classify(address: str | IPAddress) -> AddressClass:
    """Classify an address, reducing IPv4-embedding IPv6 forms first.

    Raises ``ValueError`` for text that is not an address (callers decide what that means:
    the front door fails closed, TURN answers 400).
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    embedded = embedded_ipv4(ip)
    if embedded is not None:
        effective, form = embedded
        return AddressClass(ip, effective, form, special_purpose(effective))
    return AddressClass(ip, ip, None, special_purpose(ip))
