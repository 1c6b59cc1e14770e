"""Which addresses may be located, and which IPv4 address an IPv6 form really carries.

The front door fails closed: an address that is not a public unicast address (private,
loopback, link-local, CGNAT, documentation, multicast, reserved, unspecified) has no country,
so its client counts as restricted. ``ipaddress.is_private`` and friends are not enough on their
own (REFERENCES.md): their notion changes between Python versions, they say nothing about
IPv4 addresses hidden in IPv6 forms, and they do not tell *why*. So the ranges live here in one
explicit table, taken from the IANA special-purpose address registries (RFC 6890 and updates),
with the rows of :mod:`control.ipclass` (TURN's relay filter) folded in so the two can only
differ by the front door being stricter. It is kept as integer ranges searched by bisect
because the shared module's linear scan over ``ipaddress`` networks is too slow for lookups.

IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, NAT64 and Teredo)
are classified as that IPv4 address: ``::ffff:10.0.0.1`` is private, ``2002:808:808::1`` is
located as ``8.8.8.8``.

Parsing uses ``socket.inet_pton`` and integers rather than ``ipaddress`` objects: a lookup is on
the hot path of every join (target 200,000 lookups/s on one core) and ``ipaddress`` parsing
alone costs several microseconds for IPv6.
"""

from __future__ import annotations

import bisect
import enum
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from control.ipclass import SPECIAL_IPV4, SPECIAL_IPV6

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressKind(enum.StrEnum):
    """Why an address can or cannot be located. Only ``PUBLIC`` is ever looked up."""

    PUBLIC = "public"
    PRIVATE = "private"
    LOOPBACK = "loopback"
    LINK_LOCAL = "link-local"
    SHARED = "shared"
    """RFC 6598 shared address space (carrier-grade NAT, 100.64.0.0/10)."""
    DOCUMENTATION = "documentation"
    MULTICAST = "multicast"
    UNSPECIFIED = "unspecified"
    RESERVED = "reserved"
    """IETF protocol assignments, benchmarking, future use, unallocated space, broadcast..."""


class Embedding(enum.StrEnum):
    """How an IPv6 address carries an IPv4 address."""

    IPV4_MAPPED = "ipv4-mapped"  # ::ffff:0:0/96, RFC 4291
    IPV4_COMPATIBLE = "ipv4-compatible"  # ::/96, RFC 4291 (deprecated)
    SIX_TO_FOUR = "6to4"  # 2002::/16, RFC 3056
    NAT64 = "nat64"  # 64:ff9b::/96, RFC 6052
    NAT64_LOCAL = "nat64-local"  # 64:ff9b:1::/48, RFC 8215 (a /96 inside it, as SIIT-DC uses)
    TEREDO = "teredo"  # 2001::/32, RFC 4380 (client's public address, bit-inverted)


@dataclass(frozen=True, slots=True)
class Classified:
    """An address with its kind; ``address`` is the embedded IPv4 address for IPv6 forms."""

    address: IPAddress
    kind: AddressKind
    embedding: Embedding | None = None

    @property
    def locatable(self) -> bool:
        """Only public unicast addresses may be looked up; everything else fails closed."""
        return self.kind is AddressKind.PUBLIC


def _v4(cidr: str) -> tuple[int, int]:
    net = ipaddress.IPv4Network(cidr)
    return int(net.network_address), int(net.broadcast_address)


def _v6(cidr: str) -> tuple[int, int]:
    net = ipaddress.IPv6Network(cidr)
    return int(net.network_address), int(net.broadcast_address)


K = AddressKind

#: IPv4 special-purpose ranges (IANA IPv4 Special-Purpose Address Registry, RFC 6890 et seq.).
#: A few of these are globally reachable anycast services (192.0.0.9, AS112, AMT); none of them
#: is a client, so failing closed on them costs nothing.
IPV4_SPECIAL: tuple[tuple[str, AddressKind, str], ...] = (
    ("0.0.0.0/32", K.UNSPECIFIED, "RFC 1122 unspecified"),
    ("0.0.0.0/8", K.RESERVED, "RFC 791 'this network'"),
    ("10.0.0.0/8", K.PRIVATE, "RFC 1918"),
    ("100.64.0.0/10", K.SHARED, "RFC 6598 shared address space (CGNAT)"),
    ("127.0.0.0/8", K.LOOPBACK, "RFC 1122"),
    ("169.254.0.0/16", K.LINK_LOCAL, "RFC 3927 (includes cloud metadata 169.254.169.254)"),
    ("172.16.0.0/12", K.PRIVATE, "RFC 1918"),
    ("192.0.0.0/24", K.RESERVED, "RFC 6890 IETF protocol assignments"),
    ("192.0.2.0/24", K.DOCUMENTATION, "RFC 5737 TEST-NET-1"),
    ("192.31.196.0/24", K.RESERVED, "RFC 7535 AS112-v4"),
    ("192.52.193.0/24", K.RESERVED, "RFC 7450 AMT"),
    ("192.88.99.0/24", K.RESERVED, "RFC 7526 deprecated 6to4 relay anycast"),
    ("192.168.0.0/16", K.PRIVATE, "RFC 1918"),
    ("192.175.48.0/24", K.RESERVED, "RFC 7534 direct delegation AS112"),
    ("198.18.0.0/15", K.RESERVED, "RFC 2544 benchmarking"),
    ("198.51.100.0/24", K.DOCUMENTATION, "RFC 5737 TEST-NET-2"),
    ("203.0.113.0/24", K.DOCUMENTATION, "RFC 5737 TEST-NET-3"),
    ("224.0.0.0/4", K.MULTICAST, "RFC 5771"),
    ("240.0.0.0/4", K.RESERVED, "RFC 1112 future use"),
    ("255.255.255.255/32", K.RESERVED, "RFC 919 limited broadcast"),
)

#: IPv6 special-purpose ranges (IANA IPv6 Special-Purpose Address Registry). Embedding forms are
#: handled before this table; anything outside 2000::/3 (the only space IANA allocates for
#: global unicast) that no row names is reserved.
IPV6_SPECIAL: tuple[tuple[str, AddressKind, str], ...] = (
    ("::/128", K.UNSPECIFIED, "RFC 4291"),
    ("::1/128", K.LOOPBACK, "RFC 4291"),
    ("100::/64", K.RESERVED, "RFC 6666 discard-only"),
    ("2001::/23", K.RESERVED, "RFC 2928 IETF protocol assignments"),
    ("2001:db8::/32", K.DOCUMENTATION, "RFC 3849"),
    ("3fff::/20", K.DOCUMENTATION, "RFC 9637"),
    ("5f00::/16", K.RESERVED, "RFC 9602 SRv6 SIDs"),
    ("fc00::/7", K.PRIVATE, "RFC 4193 unique local"),
    ("fe80::/10", K.LINK_LOCAL, "RFC 4291"),
    ("fec0::/10", K.RESERVED, "RFC 3879 deprecated site-local"),
    ("ff00::/8", K.MULTICAST, "RFC 4291"),
)

_GLOBAL_UNICAST_V6 = _v6("2000::/3")


class _RangeTable:
    """Non-overlapping integer ranges searched with bisect; nested rows are flattened so the
    most specific row wins (``0.0.0.0/32`` inside ``0.0.0.0/8``)."""

    def __init__(self, rows: list[tuple[int, int, AddressKind]]) -> None:
        # Most specific first: paint narrower ranges, then fill gaps with wider ones.
        pieces: list[tuple[int, int, AddressKind]] = []
        for start, end, kind in sorted(rows, key=lambda r: r[1] - r[0]):
            pieces = _paint(pieces, start, end, kind)
        pieces.sort()
        self.starts = [p[0] for p in pieces]
        self.ends = [p[1] for p in pieces]
        self.kinds = [p[2] for p in pieces]

    def find(self, value: int) -> AddressKind | None:
        index = bisect.bisect_right(self.starts, value) - 1
        if index >= 0 and value <= self.ends[index]:
            return self.kinds[index]
        return None


def _paint(
    pieces: list[tuple[int, int, AddressKind]], start: int, end: int, kind: AddressKind
) -> list[tuple[int, int, AddressKind]]:
    """Add [start, end] to ``pieces`` where no piece already covers it."""
    gaps = [(start, end)]
    for p_start, p_end, _ in pieces:
        next_gaps = []
        for g_start, g_end in gaps:
            if p_end < g_start or p_start > g_end:
                next_gaps.append((g_start, g_end))
                continue
            if g_start < p_start:
                next_gaps.append((g_start, p_start - 1))
            if p_end < g_end:
                next_gaps.append((p_end + 1, g_end))
        gaps = next_gaps
    return pieces + [(g_start, g_end, kind) for g_start, g_end in gaps]


#: Kinds for the range names of :mod:`control.ipclass`, the table TURN's relay filter uses.
#: Its rows are folded in below ours, so the front door is never less strict than TURN; a
#: name missing here counts as reserved.
SHARED_TABLE_KINDS: dict[str, AddressKind] = {
    "private": K.PRIVATE,
    "unique-local": K.PRIVATE,
    "cgnat": K.SHARED,
    "loopback": K.LOOPBACK,
    "link-local": K.LINK_LOCAL,
    "documentation": K.DOCUMENTATION,
    "multicast": K.MULTICAST,
    "unspecified": K.UNSPECIFIED,
}


def _shared_rows(
    table: Sequence[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]],
) -> list[tuple[int, int, AddressKind]]:
    return [
        (
            int(net.network_address),
            int(net.broadcast_address),
            SHARED_TABLE_KINDS.get(name, K.RESERVED),
        )
        for net, name in table
    ]


# Our rows first: for an identical range, the first row painted names the kind.
_V4_TABLE = _RangeTable(
    [(*_v4(cidr), kind) for cidr, kind, _ in IPV4_SPECIAL] + _shared_rows(SPECIAL_IPV4)
)
_V6_TABLE = _RangeTable(
    [(*_v6(cidr), kind) for cidr, kind, _ in IPV6_SPECIAL] + _shared_rows(SPECIAL_IPV6)
)

_MASK32 = 0xFFFFFFFF
_MAPPED_PREFIX = 0xFFFF << 32
_NAT64_PREFIX = int(ipaddress.IPv6Address("64:ff9b::"))
_NAT64_LOCAL = _v6("64:ff9b:1::/48")
_SIX_TO_FOUR = _v6("2002::/16")
_TEREDO = _v6("2001::/32")


def embedded_ipv4(value: int) -> tuple[int, Embedding] | None:
    """The IPv4 address (as an int) an IPv6 address (as an int) carries, and how."""
    high96 = value >> 32
    if high96 == 0:
        if value > 1:  # :: and ::1 are IPv6's own unspecified and loopback
            return value, Embedding.IPV4_COMPATIBLE
        return None
    if high96 == 0xFFFF:
        return value & _MASK32, Embedding.IPV4_MAPPED
    if value >> 32 == _NAT64_PREFIX >> 32:
        return value & _MASK32, Embedding.NAT64
    if _NAT64_LOCAL[0] <= value <= _NAT64_LOCAL[1]:
        return value & _MASK32, Embedding.NAT64_LOCAL
    if _SIX_TO_FOUR[0] <= value <= _SIX_TO_FOUR[1]:
        return (value >> 80) & _MASK32, Embedding.SIX_TO_FOUR
    if _TEREDO[0] <= value <= _TEREDO[1]:
        return (value & _MASK32) ^ _MASK32, Embedding.TEREDO
    return None


def _teredo_server(value: int) -> int:
    """The Teredo server of a Teredo address (bits 32-63). A client whose server is not a
    public address fails closed, as TURN's relay filter (:mod:`control.ipclass`) denies it."""
    return (value >> 64) & _MASK32


def kind_of_ipv4(value: int) -> AddressKind:
    return _V4_TABLE.find(value) or AddressKind.PUBLIC


def kind_of_ipv6(value: int) -> AddressKind:
    """The kind of a native (non-embedding) IPv6 address."""
    kind = _V6_TABLE.find(value)
    if kind is not None:
        return kind
    if _GLOBAL_UNICAST_V6[0] <= value <= _GLOBAL_UNICAST_V6[1]:
        return AddressKind.PUBLIC
    return AddressKind.RESERVED


def parse_address(text: str) -> IPAddress | None:
    """A strictly parsed IPv4 or IPv6 address, or None. IPv6 zone ids (``%eth0``) are allowed
    (such addresses are link-local or otherwise unlocatable anyway)."""
    try:
        if ":" in text:
            packed = socket.inet_pton(socket.AF_INET6, text)
            return ipaddress.IPv6Address(packed)
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except (OSError, ValueError):
        pass
    try:
        return ipaddress.ip_address(text)  # zone ids; still strict about everything else
    except ValueError:
        return None


def classify(address: IPAddress) -> Classified:
    """Classify an address, looking through IPv6 forms that embed an IPv4 address."""
    value = int(address)
    if address.version == 4:
        return Classified(address, kind_of_ipv4(value))
    embedded = embedded_ipv4(value)
    if embedded is not None:
        v4, how = embedded
        kind = kind_of_ipv4(v4)
        if how is Embedding.TEREDO and kind is AddressKind.PUBLIC:
            kind = kind_of_ipv4(_teredo_server(value))
        return Classified(ipaddress.IPv4Address(v4), kind, how)
    return Classified(address, kind_of_ipv6(value))


def classify_text(text: str) -> tuple[str | None, AddressKind | None]:
    """Hot-path classification of an address literal.

    Returns ``(query, kind)``: ``query`` is the literal to look up in a database (the embedded
    IPv4 address for IPv6 forms) and is None unless the address is public; ``kind`` is None when
    ``text`` is not an address at all.
    """
    try:
        if ":" in text:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
        else:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
            kind = _V4_TABLE.find(value) or AddressKind.PUBLIC
            return (text if kind is AddressKind.PUBLIC else None), kind
    except (OSError, ValueError):  # ValueError: NUL or surrogate characters
        parsed = parse_address(text)
        if parsed is None:
            return None, None
        result = classify(parsed)
        return (str(result.address) if result.locatable else None), result.kind
    embedded = embedded_ipv4(value)
    if embedded is not None:
        v4 = embedded[0]
        kind = _V4_TABLE.find(v4) or AddressKind.PUBLIC
        if embedded[1] is Embedding.TEREDO and kind is AddressKind.PUBLIC:
            kind = kind_of_ipv4(_teredo_server(value))
        if kind is not AddressKind.PUBLIC:
            return None, kind
        return socket.inet_ntop(socket.AF_INET, v4.to_bytes(4, "big")), kind
    kind = kind_of_ipv6(value)
    return (text if kind is AddressKind.PUBLIC else None), kind
