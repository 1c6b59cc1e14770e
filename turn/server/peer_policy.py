"""Which peers a TURN allocation may relay to: one policy, applied on every path.

Relay abuse ("SSRF on steroids") is the TURN threat. pion/turn once filtered ChannelBind but not
CreatePermission, coturn's loopback block missed ``0.0.0.0``, ``::1`` and ``::``
(CVE-2020-26262), and IPv4-mapped/NAT64/6to4 forms smuggled private addresses past several
servers. So: every peer address is reduced to the IPv4 address it embeds first
(``control.ipclass``, explicit IANA tables), and the same :meth:`PeerPolicy.check` answers
CreatePermission, ChannelBind and Send.

Order of the checks, and why:

1. The node's own service endpoints (TURN listeners, metrics, etcd) are denied even inside an
   ``--allow-peer`` range: a peer there turns the relay into a loop or a way to reach internal
   control traffic, and tests that allow 127.0.0.0/8 must still prove this deny.
2. The node's own live relay addresses are denied unless ``allow_relay_to_relay`` (two clients of
   one node relaying to each other); allowed ranges do not override it either. Only live relays
   count: a free port of the range has nothing behind it, and denying the whole range would
   also deny unrelated peers whose ephemeral ports happen to fall in it.
3. An ``--allow-peer`` range allows.
4. Any special-purpose range (loopback, private, CGNAT, link-local and metadata, multicast,
   reserved, broadcast, unspecified, ULA, site-local, ...) denies, named by its category.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Final

from control.ipclass import classify

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Addr = tuple[str, int]

_CACHE_LIMIT: Final = 4096


def _canonical(ip: str) -> str:
    """The IP a socket would reach, as text (embedded IPv4 extracted)."""
    return str(classify(ip).effective)


class PeerPolicy:
    """Decides whether a peer transport address may be relayed to; returns a denial reason."""

    __slots__ = (
        "_allowed",
        "_category_cache",
        "_own_any_port",
        "_own_endpoints",
        "_relay_ips",
        "allow_relay_to_relay",
        "relay_addresses",
    )

    def __init__(
        self,
        *,
        allow: Iterable[str] = (),
        own_endpoints: Iterable[Addr] = (),
        relay_ips: Iterable[str] = (),
        allow_relay_to_relay: bool = False,
    ) -> None:
        """``own_endpoints`` are (host, port) pairs; a wildcard host (``0.0.0.0``/``::``) denies
        that port on every address of this node (``relay_ips``) and on every special address.
        """
        self._allowed: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in allow
        )
        self._own_endpoints: set[Addr] = set()
        self._own_any_port: set[int] = set()
        for host, port in own_endpoints:
            ip = ipaddress.ip_address(host)
            if ip.is_unspecified:
                self._own_any_port.add(port)
            else:
                self._own_endpoints.add((_canonical(host), port))
        self._relay_ips = {_canonical(ip) for ip in relay_ips}
        #: Live relay addresses of this node, kept current by the core.
        self.relay_addresses: set[Addr] = set()
        self.allow_relay_to_relay = allow_relay_to_relay
        self._category_cache: dict[str, str | None] = {}

    def add_own_endpoint(self, host: str, port: int) -> None:
        """Deny one more service endpoint (a listener bound after the policy was built)."""
        ip = ipaddress.ip_address(host)
        if ip.is_unspecified:
            self._own_any_port.add(port)
        else:
            self._own_endpoints.add((_canonical(host), port))

    def _category(self, ip: str) -> str | None:
        """Denial category of ``ip`` ignoring ports: None if allowed."""
        cached = self._category_cache.get(ip, "")
        if cached != "":
            return cached
        try:
            klass = classify(ip)
        except ValueError:
            return "invalid"
        effective = klass.effective
        result: str | None
        if any(effective in net for net in self._allowed if net.version == effective.version):
            result = None
        elif klass.special is not None:
            result = klass.special
        else:
            result = None
        if len(self._category_cache) >= _CACHE_LIMIT:
            self._category_cache.clear()
        self._category_cache[ip] = result
        return result

    def check(self, ip: str, port: int | None) -> str | None:
        """The reason relaying to ``(ip, port)`` is denied, or None when it is allowed.

        ``port`` is None for CreatePermission (permissions are per IP, RFC 8656 §9); the port
        checks then happen on Send and ChannelBind, which name the port.
        """
        try:
            effective = _canonical(ip)
        except ValueError:
            return "invalid"
        if port is not None:
            if port == 0:
                return "invalid"
            if (effective, port) in self._own_endpoints:
                return "own-endpoint"
            if port in self._own_any_port and (
                effective in self._relay_ips or classify(effective).special is not None
            ):
                return "own-endpoint"
            if not self.allow_relay_to_relay and (effective, port) in self.relay_addresses:
                return "own-relay"
        return self._category(ip)


def parse_endpoint(text: str, default_port: int | None = None) -> Addr:
    """``HOST:PORT``, ``[V6]:PORT`` or a bare host (with ``default_port``) as (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not port_text:
        if default_port is None:
            raise ValueError(f"{text!r}: expected HOST:PORT")
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: port must be 0-65535")
    return host, int(port_text)


__all__ = ["PeerPolicy", "parse_endpoint"]
