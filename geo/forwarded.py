"""Parsers for the proxy chain headers: ``X-Forwarded-For`` and RFC 7239 ``Forwarded``.

Both give the hops a request passed through, oldest first. A hop is an address, or None when a
proxy wrote ``unknown`` or an obfuscated identifier (RFC 7239 §6.2-6.3): a hop that exists but
cannot be located.

Syntax errors raise :class:`MalformedHeader`. The caller must then fail closed (the client's
address is unknown), never fall back to the connection's peer: the peer is the proxy, and a
proxy outside the restricted jurisdiction would locate every such client in its own country.

An empty ``X-Forwarded-For`` element is an error too, although HTTP list syntax lets a
recipient skip empty elements (RFC 9110 §5.6.1): a proxy that appends nothing for a client it
could not name (``8.8.8.8, `` after the client sent ``8.8.8.8``) would otherwise hand the
choice of address to the client.
"""

from __future__ import annotations

import re

from geo.addresses import IPAddress, parse_address

Hop = IPAddress | None

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")
_PORT = re.compile(r"[0-9]{1,5}|_[A-Za-z0-9._-]+")
_OWS = " \t"


class MalformedHeader(ValueError):
    """A forwarding header that does not parse."""


def parse_node(text: str, *, bare_ipv6: bool) -> Hop:
    """One hop: ``1.2.3.4``, ``1.2.3.4:80``, ``[2001:db8::1]``, ``[2001:db8::1]:80``,
    ``unknown`` or ``_obfuscated`` (with or without a port). ``bare_ipv6`` also accepts an
    unbracketed IPv6 address, as X-Forwarded-For writers do."""
    if text.lower() == "unknown" or _OBFUSCATED.fullmatch(text):
        return None
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise MalformedHeader("unterminated [")
        host, rest = text[1:close], text[close + 1 :]
        if rest:
            _check_port(rest)
        address = parse_address(host)
        if address is None or address.version != 6:
            raise MalformedHeader("bracketed value is not an IPv6 address")
        return address
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        _check_port(":" + port)
        if host.lower() == "unknown" or _OBFUSCATED.fullmatch(host):
            return None
        text = host
    elif ":" in text and not bare_ipv6:
        raise MalformedHeader("IPv6 address without brackets")
    address = parse_address(text)
    if address is None or "%" in text:
        raise MalformedHeader("not an address")
    return address


def _check_port(rest: str) -> None:
    if not rest.startswith(":") or not _PORT.fullmatch(rest[1:]):
        raise MalformedHeader("bad port")
    if rest[1].isdigit() and int(rest[1:]) > 65535:
        raise MalformedHeader("port out of range")


def parse_x_forwarded_for(value: str) -> list[Hop]:
    """The hops of an ``X-Forwarded-For`` value (all header lines joined with commas); an
    empty value or an empty element raises :class:`MalformedHeader`."""
    hops: list[Hop] = []
    for item in value.split(","):
        item = item.strip(_OWS)
        if not item:
            raise MalformedHeader("empty element")
        hops.append(parse_node(item, bare_ipv6=True))
    return hops


def parse_forwarded(value: str) -> list[Hop]:
    """The ``for=`` hop of each element of a ``Forwarded`` value. An element without ``for``
    is a hop that did not say who it forwarded for: an unknown hop. An empty value or element
    raises :class:`MalformedHeader`, as in ``X-Forwarded-For``."""
    hops: list[Hop] = []
    for element in _forwarded_elements(value):
        if "for" in element:
            hops.append(parse_node(element["for"], bare_ipv6=False))
        else:
            hops.append(None)
    return hops


def _forwarded_elements(value: str) -> list[dict[str, str]]:
    elements: list[dict[str, str]] = [{}]
    pos, end = 0, len(value)
    while True:
        while pos < end and value[pos] in _OWS:
            pos += 1
        if pos >= end:
            break
        char = value[pos]
        if char == ",":
            elements.append({})
            pos += 1
            continue
        if char == ";":
            pos += 1
            continue
        name_match = _TOKEN.match(value, pos)
        if not name_match or name_match.end() >= end or value[name_match.end()] != "=":
            raise MalformedHeader("expected name=value")
        name = name_match.group().lower()
        pos = name_match.end() + 1
        if pos < end and value[pos] == '"':
            text, pos = _quoted_string(value, pos)
        else:
            token = _TOKEN.match(value, pos)
            if not token:
                raise MalformedHeader("expected a token or quoted string")
            text, pos = token.group(), token.end()
        if name in elements[-1]:
            raise MalformedHeader(f"parameter {name} repeated in one element")
        elements[-1][name] = text
        while pos < end and value[pos] in _OWS:
            pos += 1
        if pos < end and value[pos] not in ",;":
            raise MalformedHeader("expected , or ; after a value")
    if not all(elements):
        raise MalformedHeader("empty element")
    return elements


def _quoted_string(value: str, pos: int) -> tuple[str, int]:
    """Parse the quoted-string starting at ``value[pos] == '"'``; returns (text, next pos)."""
    out: list[str] = []
    pos += 1
    while pos < len(value):
        char = value[pos]
        if char == '"':
            return "".join(out), pos + 1
        if char == "\\":
            pos += 1
            if pos >= len(value):
                break
            char = value[pos]
        if char in "\r\n\0":
            raise MalformedHeader("control character in quoted string")
        out.append(char)
        pos += 1
    raise MalformedHeader("unterminated quoted string")
