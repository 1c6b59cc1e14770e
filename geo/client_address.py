"""The address a join request really comes from, trusting only the proxies we were told to.

``X-Forwarded-For`` and ``Forwarded`` are written by whoever sends the request, so they mean
something only when the connection comes from a configured trusted proxy, and then only the
part that proxies appended: the chain is read from the right, skipping hops that are
themselves trusted proxies, and the first other hop is the client (REFERENCES.md, "residency
and privacy"). Everything to its left was written by the client and is ignored.

Exactly one header is read, the one the operator's proxies write: if the proxy appends to
``X-Forwarded-For``, a ``Forwarded`` header in the same request came from the client, and
reading it would let any client choose its own country.

The result is None when no address can be known, and the caller then fails closed: an
unparsable peer; the client's hop ``unknown`` or obfuscated; a trusted proxy's request whose
header is missing, empty, or has an empty, garbled or out-of-range element anywhere; or a chain
of trusted proxies only. The proxy's own address is never the answer for a request it
forwarded: a proxy outside the restricted jurisdiction would place its clients in its own
country (issue 15, item 2).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Literal

from geo.addresses import IPAddress, parse_address
from geo.forwarded import Hop, MalformedHeader, parse_forwarded, parse_x_forwarded_for

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ForwardedHeader = Literal["x-forwarded-for", "forwarded"]
FORWARDED_HEADERS: tuple[ForwardedHeader, ...] = ("x-forwarded-for", "forwarded")

HeaderItems = Iterable[tuple[str | bytes, str | bytes]]


def parse_trusted_proxies(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``--trusted-proxy`` values as networks. Host bits set (``10.0.0.1/8``) are refused:
    the operator meant something and we cannot tell what."""
    networks: list[IPNetwork] = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=True))
        except ValueError as exc:
            raise ValueError(f"invalid trusted proxy range {cidr!r}: {exc}") from None
    return tuple(networks)


def _normalize(address: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (a dual-stack socket's view of an IPv4 peer) as plain IPv4, so one
    ``--trusted-proxy 10.0.0.0/8`` covers both socket families."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def _header_value(headers: HeaderItems, name: str) -> str | None:
    """All lines of one header joined with commas, in order (RFC 9110 §5.3); None if absent."""
    values: list[str] = []
    for key, value in headers:
        key_text = key.decode("latin-1") if isinstance(key, bytes) else key
        if key_text.lower() == name:
            values.append(value.decode("latin-1") if isinstance(value, bytes) else value)
    return ",".join(values) if values else None


def client_address(
    peer: str | IPAddress | None,
    headers: HeaderItems,
    trusted: Sequence[IPNetwork],
    *,
    header: ForwardedHeader = "x-forwarded-for",
) -> IPAddress | None:
    """The client's address: ``peer``, or from ``header`` when ``peer`` is a trusted proxy."""
    if peer is None:
        return None
    parsed = parse_address(peer) if isinstance(peer, str) else peer
    if parsed is None:
        return None
    peer_address = _normalize(parsed)
    if not trusted or not is_trusted(peer_address, trusted):
        return peer_address
    value = _header_value(headers, header)
    if value is None:
        return None  # a trusted proxy that names no client: the client cannot be known
    try:
        hops: list[Hop] = (
            parse_forwarded(value) if header == "forwarded" else parse_x_forwarded_for(value)
        )
    except MalformedHeader:
        return None
    for hop in reversed(hops):
        if hop is None:
            return None  # the client's hop (or a proxy's we cannot vouch for) is hidden
        address = _normalize(hop)
        if not is_trusted(address, trusted):
            return address
    return None  # every hop is a trusted proxy: there is no client to locate
