"""Relay sockets: the driver's :class:`~turn.server.allocation.RelayAllocator`.

Each relay is a plain non-blocking UDP socket bound to a port of the configured range, picked
at random (predictable relay ports help an attacker aim at a victim's allocation). All relay
sockets sit in one ``epoll`` set, so the driver waits for *any* relay to become readable with a
single ``trio.lowlevel.wait_readable`` on the epoll descriptor and then drains every ready
socket in a batch: one wake-up per burst, not one task (and checkpoint) per allocation.

Opening and closing are synchronous (bind never blocks), which is what lets the sans-IO core
open a relay in the middle of answering an Allocate.
"""

from __future__ import annotations

import contextlib
import errno
import random
import select
import socket

from turn.server.allocation import Addr, Allocation, Relay


class UdpRelay:
    """One relayed transport address."""

    __slots__ = ("address", "advertised", "allocation", "family", "fd", "sock")

    def __init__(self, sock: socket.socket, family: int, advertised_ip: str) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.family = family
        host, port = sock.getsockname()[:2]
        self.address: Addr = (host, port)
        self.advertised: Addr = (advertised_ip or host, port)
        self.allocation: Allocation | None = None


class UdpRelayPool:
    """Binds relay sockets in ``[low, high]`` on the IPv4 (and optional IPv6) relay address."""

    def __init__(
        self,
        ip4: str,
        port_range: tuple[int, int],
        *,
        ip6: str = "",
        external_ip4: str = "",
        rng: random.Random | None = None,
        socket_buffer: int = 1 << 20,
    ) -> None:
        low, high = port_range
        if not 0 < low <= high <= 65535:
            raise ValueError(f"relay port range {low}-{high} is not within 1-65535")
        self.ip = {4: ip4, 6: ip6}
        self.external = {4: external_ip4 or ip4, 6: ip6}
        self.range = (low, high)
        self._rng = rng or random.SystemRandom()
        self._free: dict[int, list[int]] = {4: list(range(low, high + 1))}
        if ip6:
            self._free[6] = list(range(low, high + 1))
        self._socket_buffer = socket_buffer
        self.epoll = select.epoll()
        self.by_fd: dict[int, UdpRelay] = {}

    def families(self) -> frozenset[int]:
        return frozenset(self._free)

    def open(self, family: int) -> UdpRelay | None:
        free = self._free.get(family)
        if free is None:
            return None
        skipped: list[int] = []
        relay = None
        while free and relay is None:
            i = self._rng.randrange(len(free))
            free[i], free[-1] = free[-1], free[i]
            port = free.pop()
            relay = self._bind(family, port)
            if relay is None:
                skipped.append(port)  # taken by another process: retry it later
        free.extend(skipped)
        return relay

    def open_even(self, family: int, reserve_next: bool
                  ) -> tuple[UdpRelay, UdpRelay | None] | None:
        """A relay on a random free even port; with ``reserve_next`` also one on the port
        above it (RFC 8656 EVEN-PORT). Rare (RTP/RTCP clients), so a scan of the free list is
        fine here."""
        free = self._free.get(family)
        if free is None:
            return None
        free_set = set(free)
        candidates = [p for p in free
                      if p % 2 == 0 and (not reserve_next or p + 1 in free_set)]
        self._rng.shuffle(candidates)
        for port in candidates:
            relay = self._bind(family, port)
            if relay is None:
                continue
            held = None
            if reserve_next:
                held = self._bind(family, port + 1)
                if held is None:
                    self._unbind(relay)
                    continue
                free.remove(port + 1)
            free.remove(port)
            return relay, held
        return None

    def _bind(self, family: int, port: int) -> UdpRelay | None:
        af = socket.AF_INET if family == 4 else socket.AF_INET6
        sock = socket.socket(af, socket.SOCK_DGRAM)
        try:
            if family == 6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._socket_buffer)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._socket_buffer)
            sock.bind((self.ip[family], port))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return None
            raise
        sock.setblocking(False)
        relay = UdpRelay(sock, family, self.external[family])
        self.by_fd[relay.fd] = relay
        self.epoll.register(relay.fd, select.EPOLLIN)
        return relay

    def close(self, relay: Relay) -> None:
        if isinstance(relay, UdpRelay) and self._unbind(relay):
            self._free[relay.family].append(relay.address[1])

    def _unbind(self, relay: UdpRelay) -> bool:
        """Close the socket; False if it was not (or no longer) one of ours."""
        if self.by_fd.pop(relay.fd, None) is None:
            return False
        with contextlib.suppress(OSError, ValueError):
            self.epoll.unregister(relay.fd)
        relay.sock.close()
        return True

    def free_ports(self, family: int = 4) -> int:
        return len(self._free.get(family, ()))

    def close_all(self) -> None:
        for relay in list(self.by_fd.values()):
            self.close(relay)
        self.epoll.close()


__all__ = ["UdpRelay", "UdpRelayPool"]
