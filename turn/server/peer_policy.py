"""Which peers a TURN allocation may relay to: one policy, applied on every path.

Relay abuse ("SSRF on steroids") is the TURN threat. pion/turn once filtered ChannelBind but not
CreatePermission, coturn's loopback block missed ``0.0.0.0``, ``::1`` and ``::``
(CVE-2020-26262), and IPv4-mapped/translated/NAT64/6to4/Teredo forms smuggled private
addresses past several servers. So: every peer address is reduced to the IPv4 address it
embeds first (``control.ipclass``, explicit IANA tables), and the same
:meth:`PeerPolicy.check` answers CreatePermission, ChannelBind and Send.

Order of the checks, and why:

1. The node's own service endpoints (TURN listeners, metrics, etcd) are denied even inside an
   ``--allow-peer`` range: a peer there turns the relay into a loop or a way to reach internal
   control traffic, and tests that allow 127.0.0.0/8 must still prove this deny.
2. On the node's relay addresses, a port of the relay range is denied unless it is a *live*
   allocation's relay address right now. Free ports of the range have nothing behind them (or
   another process), and letting peers aim at them would let a client probe the range.
   A live relay address is allowed: two WebRTC peers whose relay candidates are both on this
   node (p2p rooms through TURN) must reach each other, and RFC 8656 already protects the
   receiving allocation: a datagram arriving at its relay is delivered only if *its* client
   installed a permission for the sender's relay IP. (This replaces the old
   ``--allow-relay-to-relay`` flag, which denied every relay address of the node by default
   and so broke two clients of one node; it is gone, since the inbound permission check is
   what RFC 8656 requires and coturn does the same.) The reason for both is ``own-endpoint``.
3. An ``--allow-peer`` range allows.
4. Any special-purpose range (loopback, private, CGNAT, link-local and metadata, multicast,
   reserved, broadcast, unspecified, ULA, site-local, ...) denies, named by its category.
   A live relay address still passes through this check (a relay on a private address is only
   reachable as a peer where that range is allowed).

Permissions are per IP (RFC 8656 §9), so CreatePermission to a relay IP is allowed when the IP
is otherwise allowed; the port checks of 1 and 2 happen on Send and ChannelBind (which name the
port; ChannelData then follows the binding, and the core unbinds channels aimed at a relay
whose allocation goes away).
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
        "_relay_any",
        "_relay_ips",
        "relay_addresses",
        "relay_ports",
    )

    def __init__(
        self,
        *,
        allow: Iterable[str] = (),
        own_endpoints: Iterable[Addr] = (),
        relay_ips: Iterable[str] = (),
        relay_ports: tuple[int, int] | None = None,
    ) -> None:
        """``own_endpoints`` are (host, port) pairs; a wildcard host (``0.0.0.0``/``::``) denies
        that port on every address of this node (``relay_ips``) and on every special address.
        ``relay_ports`` is the relay range (LOW, HIGH): on ``relay_ips`` only live relay
        addresses of it may be peers.
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
        relay_ip_list = list(relay_ips)
        self._relay_ips = {_canonical(ip) for ip in relay_ip_list}
        #: A relay bound to a wildcard address: the range is ours on every address.
        self._relay_any = any(ipaddress.ip_address(ip).is_unspecified for ip in relay_ip_list)
        self.relay_ports = relay_ports
        #: Live relay addresses of this node (canonical IP text), kept current by the core.
        self.relay_addresses: set[Addr] = set()
        self._category_cache: dict[str, str | None] = {}

    def add_own_endpoint(self, host: str, port: int) -> None:
        """Deny one more service endpoint (a listener bound after the policy was built)."""
        ip = ipaddress.ip_address(host)
        if ip.is_unspecified:
            self._own_any_port.add(port)
        else:
            self._own_endpoints.add((_canonical(host), port))

    @staticmethod
    def canonical(addr: Addr) -> Addr:
        """``addr`` with its IP in the canonical text form the policy compares."""
        return _canonical(addr[0]), addr[1]

    def add_relay(self, addr: Addr) -> None:
        """A relay address went live (its allocation may now be a peer)."""
        self.relay_addresses.add(self.canonical(addr))

    def remove_relay(self, addr: Addr) -> None:
        self.relay_addresses.discard(self.canonical(addr))

    def is_relay_address(self, addr: Addr) -> bool:
        """True when ``addr`` is a live relay address of this node."""
        try:
            return self.canonical(addr) in self.relay_addresses
        except ValueError:
            return False

    def _is_own_address(self, effective: str) -> bool:
        if effective in self._relay_ips:
            return True
        return self._relay_any and classify(effective).special is not None

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
            ports = self.relay_ports
            if (
                ports is not None
                and ports[0] <= port <= ports[1]
                and (effective, port) not in self.relay_addresses
                and self._is_own_address(effective)
            ):
                return "own-endpoint"
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
