"""Which addresses are ordinary public unicast, and which are special — with no exceptions.

Two parts of Regio depend on this answer: TURN must never relay to loopback, private, metadata
or other special addresses (relay abuse, CVE-2020-26262), and the front door must treat such a
client address as unlocatable (fail closed). Both first reduce an IPv6 address that carries an
IPv4 address (mapped, translated, compatible, 6to4, NAT64 with the well-known and the
local-use prefix, Teredo) to that IPv4 address, because that is where packets really go, and
check it against the IPv4 table; every other IPv6 address outside the global unicast space
2000::/3, and the special blocks inside it, are special too.

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

#: Special-purpose IPv6 ranges that do not embed an IPv4 address, then every block IANA has not
#: allocated for global unicast (the IPv6 Address Space registry): first match wins, so the
#: named rows come before the wide ``reserved`` ones. The embedding forms inside ``::/8`` and
#: ``2001::/23`` (mapped, translated, compatible, NAT64, Teredo) are read before this table.
SPECIAL_IPV6: Final[tuple[tuple[ipaddress.IPv6Network, str], ...]] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("::/8"), "reserved"),  # RFC 4291: IETF-reserved apart from the forms above
    (_V6("100::/64"), "discard"),
    (_V6("2001:2::/48"), "benchmarking"),
    (_V6("2001:10::/28"), "orchid"),
    (_V6("2001:20::/28"), "orchid"),
    (_V6("2001::/23"), "ietf-protocol"),  # RFC 2928: PCP/TURN anycast, AMT, AS112, DETs...
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("2620:4f:8000::/48"), "as112"),  # RFC 7534 direct delegation AS112
    (_V6("3fff::/20"), "documentation"),
    (_V6("5f00::/16"), "srv6"),
    (_V6("fc00::/7"), "unique-local"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "site-local"),
    (_V6("ff00::/8"), "multicast"),
    # Outside 2000::/3 nothing is allocated for global unicast (RFC 4291 §2.4).
    (_V6("100::/8"), "reserved"),
    (_V6("200::/7"), "reserved"),
    (_V6("400::/6"), "reserved"),
    (_V6("800::/5"), "reserved"),
    (_V6("1000::/4"), "reserved"),
    (_V6("4000::/2"), "reserved"),
    (_V6("8000::/1"), "reserved"),
)

_MAPPED = _V6("::ffff:0:0/96")
_TRANSLATED = _V6("::ffff:0:0:0/96")
_COMPATIBLE = _V6("::/96")
_NAT64 = _V6("64:ff9b::/96")
_NAT64_LOCAL = _V6("64:ff9b:1::/48")
_SIX_TO_FOUR = _V6("2002::/16")
_TEREDO = _V6("2001::/32")
_U32 = 0xFFFFFFFF


def _bits(value: int, start: int, length: int) -> int:
    """``length`` bits of a 128-bit ``value`` from bit ``start`` (0 is the most significant)."""
    return (value >> (128 - start - length)) & ((1 << length) - 1)


def _nat64_local_candidates(value: int) -> tuple[int, ...]:
    """Every IPv4 address an address of 64:ff9b:1::/48 may carry. RFC 8215 lets an operator
    use any RFC 6052 prefix length inside it, and which one is not visible in the address, so
    each possible position (/96, /64, /56, /48; bits 64-71 are skipped) is read."""
    return (
        value & _U32,
        _bits(value, 72, 32),
        (_bits(value, 56, 8) << 24) | _bits(value, 72, 24),
        (_bits(value, 48, 16) << 16) | _bits(value, 72, 16),
    )


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


def embedded_ipv4s(ip: IPAddress) -> tuple[tuple[ipaddress.IPv4Address, str], ...]:
    """Every IPv4 address packets to ``ip`` may reach, with the form that carries it; the
    first is where they go (``effective``), the others are reached on the way (a Teredo
    client's server) or are other readings of an ambiguous form (local-use NAT64). Empty for
    an address that carries none."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ()
    value = int(ip)
    v4 = ipaddress.IPv4Address
    if ip in _MAPPED:
        return ((v4(value & _U32), "ipv4-mapped"),)
    if ip in _TRANSLATED:  # RFC 2765 (SIIT) IPv4-translated addresses
        return ((v4(value & _U32), "ipv4-translated"),)
    if ip in _COMPATIBLE and value > 1:
        return ((v4(value & _U32), "ipv4-compatible"),)
    if ip in _NAT64:
        return ((v4(value & _U32), "nat64"),)
    if ip in _NAT64_LOCAL:
        return tuple((v4(c), "nat64-local") for c in dict.fromkeys(_nat64_local_candidates(value)))
    if ip in _SIX_TO_FOUR:
        return ((v4(_bits(value, 16, 32)), "6to4"),)
    if ip in _TEREDO:
        # RFC 4380: the client's public IPv4 address is the last 32 bits, inverted; bits
        # 32-63 are its Teredo server, which a relay also sends to (bubbles, §5.4.1).
        return ((v4(~value & _U32), "teredo"), (v4(_bits(value, 32, 32)), "teredo"))
    return ()


def embedded_ipv4(ip: IPAddress) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries (where its packets go), and the form, if any."""
    found = embedded_ipv4s(ip)
    return found[0] if found else None


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
    embedded = embedded_ipv4s(ip)
    if embedded:
        effective, form = embedded[0]
        special = next((name for name in map(special_purpose, (a for a, _ in embedded))
                        if name is not None), None)
        return AddressClass(ip, effective, form, special)
    return AddressClass(ip, ip, None, special_purpose(ip))
