"""The sans-IO TURN server core (RFC 8656): bytes and ``now`` in, bytes and events out.

No sockets, clocks or Trio here (ARCHITECTURE.md §3). The driver feeds client input through
:meth:`TurnServerCore.receive_datagram` (a UDP datagram or one stream frame, with the client's
:class:`FiveTuple`) and peer input through :meth:`TurnServerCore.receive_peer_datagram`, then
drains :meth:`datagrams_to_send`, :meth:`next_event` and re-arms its one deadline from
:meth:`get_timer`. Relays are opened through a :class:`RelayAllocator` the driver implements.

Two fast paths serve the relay hot path without building a message object per packet:
:meth:`route_channel_data` (client to peer) and :meth:`route_from_peer` (peer to client). They
only look up dicts and bump counters; the driver does the socket calls.

Request handling lives in :mod:`turn.server.requests`; this module owns the state and its
lifecycle (allocation tables, quotas, expiry).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence

from control.netkey import network_key
from turn.server.allocation import (
    Addr,
    Allocation,
    ChannelBinding,
    FiveTuple,
    Relay,
    RelayAllocator,
)
from turn.server.amplification import AmplificationBudget
from turn.server.auth import NonceIssuer, RestAuthenticator
from turn.server.config import TurnConfig
from turn.server.core_api import Outgoing, ToClient, ToPeer
from turn.server.events import AllocationDeleted, TurnEvent
from turn.server.peer_policy import PeerPolicy
from turn.server.quotas import FailureLimiter
from turn.server.requests import RequestHandler
from turn.server.reservations import Reservations
from turn.server.stats import TurnStats
from turn.server.timers import DeadlineHeap
from turn.stun import (
    Data,
    MessageClass,
    Method,
    StunDecodeError,
    StunMessage,
    XorPeerAddress,
    encode_channel_data,
    parse_message,
)
from turn.stun.header import Buffer

_EXPIRE_ALLOCATION = 0
_EXPIRE_PERMISSION = 1
_EXPIRE_CHANNEL = 2
_EXPIRE_RESERVATION = 3


class TurnServerCore:
    """All allocations of one TURN node (or one worker of it)."""

    def __init__(
        self,
        config: TurnConfig,
        relays: RelayAllocator,
        *,
        secrets: Callable[[], Sequence[str]] | None = None,
        policy: PeerPolicy | None = None,
        nonce_key: bytes | None = None,
        wall_offset: float = 0.0,
    ) -> None:
        """``secrets`` returns the valid REST secrets (default: ``config.auth_secret``);
        ``wall_offset`` turns the driver's monotonic ``now`` into Unix time for REST expiry
        and nonces (``wall = now + wall_offset``)."""
        self.config = config
        self.relays = relays
        self.policy = policy or PeerPolicy(allow=config.allow_peer)
        self.wall_offset = wall_offset
        static = tuple(config.auth_secret)
        self.auth = RestAuthenticator(
            config.region,
            config.realm,
            secrets or (lambda: static),
            accept_unbound=config.accept_unbound_rest_usernames,
        )
        self.nonces = NonceIssuer(nonce_key or os.urandom(32), config.nonce_lifetime)
        self.failures = FailureLimiter(config.auth_fail_rate, config.auth_fail_burst)
        #: Byte budgets of unauthenticated UDP sources (anti-amplification).
        self.amplification = AmplificationBudget(
            factor=config.udp_amplification_factor,
            slack=config.udp_challenge_slack,
            ttl=config.unauth_budget_ttl,
            max_entries=config.unauth_budget_sources,
        )
        self.stats = TurnStats()
        self.draining = False
        #: Every allocation by five-tuple.
        self.allocations: dict[FiveTuple, Allocation] = {}
        #: UDP allocations per server address, then client address: the UDP hot path's table.
        self.udp_tables: dict[Addr, dict[Addr, Allocation]] = {}
        self.per_user: dict[str, int] = {}
        #: Allocations per client network (/24 or /48, :func:`control.netkey.network_key`).
        self.per_network: dict[int, int] = {}
        #: Channels bound to a live relay address of this node (canonical address to
        #: (five-tuple, channel)): unbound when that relay's allocation goes away.
        self._channels_to_relays: dict[Addr, set[tuple[FiveTuple, int]]] = {}
        #: Ports held by EVEN-PORT's R bit for a later Allocate with RESERVATION-TOKEN.
        self.reservations = Reservations()
        self._timers = DeadlineHeap()
        self._out: list[Outgoing] = []
        self._events: deque[TurnEvent] = deque()
        self._handler = RequestHandler(self)

    # -- input ------------------------------------------------------------------------------

    def receive_datagram(self, data: Buffer, five_tuple: FiveTuple, now: float) -> None:
        """One UDP datagram or stream frame from a client: STUN or ChannelData."""
        n = len(data)
        if n >= 4 and 0x40 <= data[0] <= 0x7F:
            self._channel_data_slow(data, five_tuple, now)
            return
        try:
            message = parse_message(data)
        except StunDecodeError:
            self.stats.dropped["malformed"] += 1
            return
        if message.cls == MessageClass.REQUEST:
            self._handler.request(message, five_tuple, n, now)
        elif message.cls == MessageClass.INDICATION and message.method == Method.SEND:
            self._handler.send_indication(message, five_tuple, now)
        else:
            self.stats.dropped["unexpected_message"] += 1

    def _channel_data_slow(self, data: Buffer, five_tuple: FiveTuple, now: float) -> None:
        alloc = self.allocations.get(five_tuple)
        if alloc is None:
            self.stats.dropped["no_allocation"] += 1
            return
        n = len(data)
        channel = data[0] << 8 | data[1]
        length = data[2] << 8 | data[3]
        if not 0 <= n - 4 - length <= 3:
            self.stats.dropped["malformed"] += 1
            return
        binding = self.route_channel_data(alloc, channel, length, now)
        if binding is not None:
            self._out.append(ToPeer(binding.relay, binding.peer, bytes(data[4 : 4 + length])))

    def receive_peer_datagram(self, relay: Relay, data: bytes, peer: Addr, now: float) -> None:
        """A datagram a peer sent to ``relay``: forwarded to the client if permitted."""
        channel = self.route_from_peer(relay, peer, len(data), now)
        if channel < 0:
            return
        alloc = relay.allocation
        assert alloc is not None
        if channel:
            # Our binding table only holds numbers ChannelBind accepted under the same setting.
            out = encode_channel_data(channel, data, pad=alloc.five_tuple.is_stream,
                                      allow_rfc5766_range=self.config.rfc5766_channels)
        else:
            out = self.data_indication(data, peer)
        self._out.append(ToClient(alloc.five_tuple, out))

    @staticmethod
    def data_indication(data: bytes, peer: Addr) -> bytes:
        """A Data indication carrying ``data`` from ``peer`` (no integrity: RFC 8656 §11.4)."""
        import ipaddress

        message = StunMessage(
            Method.DATA,
            MessageClass.INDICATION,
            os.urandom(12),
            (XorPeerAddress(ipaddress.ip_address(peer[0]), peer[1]), Data(data)),
        )
        return message.encode()

    def connection_lost(self, five_tuple: FiveTuple, now: float) -> None:
        """A TCP/TLS client connection closed: its allocation goes with it (RFC 8656 §3.1)."""
        alloc = self.allocations.get(five_tuple)
        if alloc is not None:
            self.delete_allocation(alloc, "connection-closed")

    # -- fast paths -------------------------------------------------------------------------

    def route_channel_data(
        self, alloc: Allocation, channel: int, length: int, now: float
    ) -> ChannelBinding | None:
        """Where ChannelData from ``alloc``'s client goes, or None (dropped and counted)."""
        binding = alloc.channels.get(channel)
        if binding is None:
            self.stats.dropped["no_channel"] += 1
            return None
        bucket = alloc.out_bucket
        if bucket is not None and not bucket.take(now, length):
            self.stats.dropped["bandwidth"] += 1
            return None
        stats = self.stats
        stats.packets_to_peers += 1
        stats.bytes_to_peers += length
        return binding

    def route_from_peer(self, relay: Relay, peer: Addr, length: int, now: float) -> int:
        """For a peer datagram: its channel number, 0 for a Data indication, -1 to drop."""
        alloc = relay.allocation
        if alloc is None:
            self.stats.dropped["no_allocation"] += 1
            return -1
        if peer[0] not in alloc.permissions:
            self.stats.dropped["no_permission"] += 1
            return -1
        bucket = alloc.in_bucket
        if bucket is not None and not bucket.take(now, length):
            self.stats.dropped["bandwidth"] += 1
            return -1
        stats = self.stats
        stats.packets_from_peers += 1
        stats.bytes_from_peers += length
        return alloc.channel_by_peer.get(peer, 0)

    # -- output -----------------------------------------------------------------------------

    def send(self, item: Outgoing) -> None:
        """Queue output (used by the request handler)."""
        self._out.append(item)

    def emit(self, event: TurnEvent) -> None:
        self._events.append(event)

    def datagrams_to_send(self, now: float) -> list[Outgoing]:
        """Everything queued since the last call."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> TurnEvent | None:
        return self._events.popleft() if self._events else None

    # -- state changes (called by the request handler) --------------------------------------

    def add_allocation(self, alloc: Allocation) -> None:
        ft = alloc.five_tuple
        self.allocations[ft] = alloc
        if ft.protocol == "udp":
            self.udp_tables.setdefault(ft.server, {})[ft.client] = alloc
        self.per_user[alloc.username] = self.per_user.get(alloc.username, 0) + 1
        net = network_key(ft.client[0])
        self.per_network[net] = self.per_network.get(net, 0) + 1
        for relay in alloc.relays.values():
            relay.allocation = alloc
            self.policy.add_relay(relay.advertised)
            self.policy.add_relay(relay.address)
        self._timers.push(alloc.expires, (_EXPIRE_ALLOCATION, alloc, None))

    def set_allocation_expiry(self, alloc: Allocation, expires: float) -> None:
        alloc.expires = expires
        self._timers.push(expires, (_EXPIRE_ALLOCATION, alloc, None))

    def delete_allocation(self, alloc: Allocation, reason: str) -> None:
        ft = alloc.five_tuple
        if self.allocations.get(ft) is not alloc:
            return
        del self.allocations[ft]
        if ft.protocol == "udp":
            table = self.udp_tables.get(ft.server)
            if table is not None:
                table.pop(ft.client, None)
        left = self.per_user.get(alloc.username, 1) - 1
        if left:
            self.per_user[alloc.username] = left
        else:
            self.per_user.pop(alloc.username, None)
        net = network_key(ft.client[0])
        if (on_net := self.per_network.get(net, 1) - 1) > 0:
            self.per_network[net] = on_net
        else:
            self.per_network.pop(net, None)
        for relay in alloc.relays.values():
            relay.allocation = None
            for addr in {relay.advertised, relay.address}:
                self.policy.remove_relay(addr)
                self._unbind_channels_to(self.policy.canonical(addr))
            self.relays.close(relay)
        for binding in alloc.channels.values():
            self._forget_relay_channel(ft, binding)
        alloc.permissions.clear()
        alloc.channels.clear()
        alloc.channel_by_peer.clear()
        self.emit(AllocationDeleted(ft, alloc.username, reason))

    def install_permission(self, alloc: Allocation, ip: str, now: float) -> None:
        expires = now + self.config.permission_lifetime
        alloc.permissions[ip] = expires
        self._timers.push(expires, (_EXPIRE_PERMISSION, alloc, ip))

    def bind_channel(self, alloc: Allocation, number: int, peer: Addr, relay: Relay,
                     now: float) -> None:
        expires = now + self.config.channel_lifetime
        binding = alloc.channels.get(number)
        if binding is None:
            alloc.channels[number] = ChannelBinding(number, peer, relay, expires)
            alloc.channel_by_peer[peer] = number
            if self.policy.is_relay_address(peer):
                self._channels_to_relays.setdefault(self.policy.canonical(peer), set()).add(
                    (alloc.five_tuple, number))
        else:
            binding.expires = expires
        self._timers.push(expires, (_EXPIRE_CHANNEL, alloc, number))
        self.install_permission(alloc, peer[0], now)

    def _forget_relay_channel(self, ft: FiveTuple, binding: ChannelBinding) -> None:
        if not self._channels_to_relays:
            return
        addr = self.policy.canonical(binding.peer)
        bound = self._channels_to_relays.get(addr)
        if bound is not None:
            bound.discard((ft, binding.number))
            if not bound:
                del self._channels_to_relays[addr]

    def _unbind_channels_to(self, addr: Addr) -> None:
        """Drop every channel bound to ``addr``, a relay address that is no longer live."""
        policy = self.policy
        for ft, number in self._channels_to_relays.pop(addr, ()):
            other = self.allocations.get(ft)
            if other is None:
                continue
            binding = other.channels.get(number)
            if binding is not None and policy.canonical(binding.peer) == addr:
                del other.channels[number]
                other.channel_by_peer.pop(binding.peer, None)
                self.stats.dropped["channel_to_dead_relay"] += 1

    def reserve(self, relay: Relay, now: float) -> bytes:
        """Hold ``relay`` for a later Allocate; the token that redeems it."""
        token, expires = self.reservations.hold(relay, now)
        self.stats.reservations["held"] += 1
        self._timers.push(expires, (_EXPIRE_RESERVATION, None, token))
        return token

    def set_draining(self) -> None:
        """Refuse new allocations from now on; existing ones live until they expire."""
        self.draining = True

    # -- timer ------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The one deadline at which :meth:`handle_timer` must be called, or None."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Expire every allocation, permission and channel binding due at ``now``."""
        for when, entry in self._timers.pop_due(now):
            kind: int = entry[0]
            key = entry[2]
            if kind == _EXPIRE_RESERVATION:
                relay = self.reservations.expire(key, when)
                if relay is not None:
                    self.stats.reservations["expired"] += 1
                    self.relays.close(relay)
                continue
            alloc: Allocation = entry[1]
            if self.allocations.get(alloc.five_tuple) is not alloc:
                continue
            if kind == _EXPIRE_ALLOCATION:
                if alloc.expires == when:
                    self.delete_allocation(alloc, "expired")
            elif kind == _EXPIRE_PERMISSION:
                if alloc.permissions.get(key) == when:
                    del alloc.permissions[key]
            else:
                binding = alloc.channels.get(key)
                if binding is not None and binding.expires == when:
                    del alloc.channels[key]
                    alloc.channel_by_peer.pop(binding.peer, None)
                    self._forget_relay_channel(alloc.five_tuple, binding)

    # -- introspection ----------------------------------------------------------------------

    def counts(self) -> tuple[int, int, int]:
        """(allocations, permissions, channels) right now, for gauges and load."""
        allocs = self.allocations.values()
        return (
            len(self.allocations),
            sum(len(a.permissions) for a in allocs),
            sum(len(a.channels) for a in allocs),
        )


__all__ = ["Outgoing", "ToClient", "ToPeer", "TurnServerCore"]
