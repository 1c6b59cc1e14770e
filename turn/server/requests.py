"""TURN request handling (RFC 8656 §7-11) on top of the core's state: one method per request,
chosen from a dispatch table, each answering through :meth:`RequestHandler.reply`.

Authentication follows RFC 8489 §9.2.4 in its order: no MESSAGE-INTEGRITY is a 401 challenge;
MESSAGE-INTEGRITY without USERNAME, REALM or NONCE is 400; a wrong realm or a USERNAME that can
never be valid here (malformed, other region, expired) is 401; a MESSAGE-INTEGRITY no valid
secret reproduces is 401; only then is the nonce checked, so a nonce we never issued or that
expired is 438 with a fresh one. Each 401 after a credential attempt counts against the
source's /24 or /48, and a source over its budget is not answered at all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Final

from control.netkey import network_key
from turn.server.allocation import Allocation, FiveTuple, Relay
from turn.server.auth import Credential
from turn.server.core_api import CoreState, ToClient, ToPeer
from turn.server.events import AllocationCreated, AuthFailed, PeerDenied
from turn.server.responses import (
    encode_authenticated,
    encode_unauthenticated,
    error,
    success,
)
from turn.stun import (
    TRANSPORT_UDP,
    AdditionalAddressFamily,
    AddressErrorCode,
    Attribute,
    AttrType,
    ChannelNumber,
    Data,
    DontFragment,
    EvenPort,
    Lifetime,
    MessageClass,
    Method,
    Nonce,
    Realm,
    RequestedAddressFamily,
    RequestedTransport,
    ReservationToken,
    StunMessage,
    UnknownAttributes,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
    is_valid_channel_number,
)

_FAMILY_BY_WIRE: Final = {0x01: 4, 0x02: 6}
_WIRE_BY_FAMILY: Final = {4: 0x01, 6: 0x02}
_METHOD_NAMES: Final = {m.value: m.name.lower() for m in Method}

Handler = Callable[[StunMessage, FiveTuple, Credential, float], StunMessage | None]


class RequestHandler:
    """Answers the requests of one core."""

    def __init__(self, core: CoreState) -> None:
        self.core = core
        self.config = core.config
        self._authenticated: dict[int, Handler] = {
            Method.ALLOCATE: self.allocate,
            Method.REFRESH: self.refresh,
            Method.CREATE_PERMISSION: self.create_permission,
            Method.CHANNEL_BIND: self.channel_bind,
        }
        self._now = 0.0  # the ``now`` of the request being handled

    # -- replies ----------------------------------------------------------------------------

    def reply(
        self,
        response: StunMessage,
        ft: FiveTuple,
        request_size: int,
        credential: Credential | None,
    ) -> bytes | None:
        """Encode and queue ``response``.

        An unauthenticated UDP answer must fit the source's byte budget
        (:mod:`turn.server.amplification`): the richest form that fits is sent and charged;
        if none fits, nothing is sent and ``amplification_deferred`` counts it (the client's
        retransmission adds to the budget). The request's ``request_size`` bytes are credited
        here, so only sources that get unauthenticated answers are tracked at all.
        """
        if credential is not None:
            data = encode_authenticated(response, self.config.software, credential.key)
        elif ft.is_stream:
            data = encode_unauthenticated(response, self.config.software, None) or b""
        else:
            budget = self.core.amplification
            budget.received(ft, request_size, self._now)
            lean = encode_unauthenticated(response, self.config.software, budget.available(ft))
            if lean is None or not budget.spend(ft, len(lean)):
                self.core.stats.dropped["amplification_deferred"] += 1
                return None
            data = lean
        self.core.send(ToClient(ft, data))
        return data

    def _challenge(self, request: StunMessage, ft: FiveTuple, size: int, now: float,
                   code: int = 401) -> None:
        wall = now + self.core.wall_offset
        nonce = self.core.nonces.issue(ft.client[0], wall)
        response = error(request, code, Realm(self.config.realm), Nonce(nonce))
        self.reply(response, ft, size, None)

    def _fail(self, request: StunMessage, ft: FiveTuple, size: int, now: float,
              reason: str) -> None:
        """A failed credential: count it against the source, then challenge again."""
        self.core.stats.auth_failures[reason] += 1
        self.core.failures.record_failure(ft.client[0], now)
        self.core.emit(AuthFailed(ft, reason))
        self._challenge(request, ft, size, now)

    # -- entry points -----------------------------------------------------------------------

    def request(self, request: StunMessage, ft: FiveTuple, size: int, now: float) -> None:
        method = request.method
        self.core.stats.requests[_METHOD_NAMES.get(method, "unknown")] += 1
        self._now = now
        if method == Method.BINDING:
            self._binding(request, ft, size)
            return
        handler = self._authenticated.get(method)
        if handler is None:
            self.reply(error(request, 400, reason="Unknown method"), ft, size, None)
            return
        credential = self._authenticate(request, ft, size, now)
        if credential is None:
            return
        unknown = request.unknown_required
        if method == Method.ALLOCATE and request.get(DontFragment) is not None:
            # We cannot set DF on relayed datagrams: RFC 8656 §7.2 says treat it as unknown.
            unknown = (*unknown, AttrType.DONT_FRAGMENT)
        if unknown:
            self.reply(error(request, 420, UnknownAttributes(tuple(unknown))), ft, size,
                       credential)
            return
        alloc = self.core.allocations.get(ft)
        if alloc is not None and alloc.username != credential.username:
            self.core.stats.auth_failures["wrong_username"] += 1
            self.core.emit(AuthFailed(ft, "wrong_username"))
            self.reply(error(request, 441), ft, size, credential)
            return
        response = handler(request, ft, credential, now)
        if response is not None:
            data = self.reply(response, ft, size, credential)
            succeeded = response.cls == MessageClass.SUCCESS
            if method == Method.ALLOCATE and data is not None and succeeded:
                new = self.core.allocations.get(ft)
                if new is not None:
                    new.allocate_tid = request.transaction_id
                    new.allocate_response = data

    def _binding(self, request: StunMessage, ft: FiveTuple, size: int) -> None:
        ip, port = ft.client
        response = success(request, XorMappedAddress(ipaddress.ip_address(ip), port))
        self.reply(response, ft, size, None)

    def _authenticate(self, request: StunMessage, ft: FiveTuple, size: int, now: float
                      ) -> Credential | None:
        core = self.core
        ip = ft.client[0]
        if core.failures.blocked(ip, now):
            core.stats.dropped["auth_rate_limited"] += 1
            return None
        username = request.get(Username)
        if not request.has_integrity:
            if username is not None:
                self._fail(request, ft, size, now, "missing_integrity")
            else:
                core.stats.auth_failures["challenged"] += 1
                self._challenge(request, ft, size, now)
            return None
        realm = request.get(Realm)
        nonce = request.get(Nonce)
        if username is None or realm is None or nonce is None:
            core.stats.auth_failures["missing_attributes"] += 1
            core.failures.record_failure(ip, now)
            self.reply(error(request, 400), ft, size, None)
            return None
        wall = now + core.wall_offset
        if realm.value != self.config.realm:
            self._fail(request, ft, size, now, "wrong_realm")
            return None
        problem = core.auth.username_problem(username.value, wall)
        if problem is not None:
            self._fail(request, ft, size, now, problem)
            return None
        key = next(
            (k for k in core.auth.candidate_keys(username.value) if request.integrity_ok(k)),
            None,
        )
        if key is None:
            self._fail(request, ft, size, now, "bad_integrity")
            return None
        if not core.nonces.check(nonce.value, ip, wall):
            core.stats.auth_failures["stale_nonce"] += 1
            self._challenge(request, ft, size, now, 438)
            return None
        if not ft.is_stream:
            core.amplification.authenticated(ft)
        return Credential(username.value, key)

    # -- Allocate ---------------------------------------------------------------------------

    def allocate(self, request: StunMessage, ft: FiveTuple, cred: Credential, now: float
                 ) -> StunMessage | None:
        core = self.core
        existing = core.allocations.get(ft)
        if existing is not None:
            if existing.allocate_tid == request.transaction_id and existing.allocate_response:
                core.send(ToClient(ft, existing.allocate_response))  # retransmission
                return None
            return error(request, 437)
        transport = request.get(RequestedTransport)
        if transport is None:
            return error(request, 400, reason="REQUESTED-TRANSPORT missing")
        if transport.protocol != TRANSPORT_UDP:
            return error(request, 442)
        requested = request.get(RequestedAddressFamily)
        additional = request.get(AdditionalAddressFamily)
        even = request.get(EvenPort)
        token = request.get(ReservationToken)
        if token is not None and (even is not None or requested is not None
                                  or additional is not None):
            # RFC 8656 §7.2: a token names one relay; it combines with no port or family ask.
            return error(request, 400, reason="RESERVATION-TOKEN with EVEN-PORT or a family")
        if requested is not None and additional is not None:
            return error(request, 400, reason="Both address family attributes")
        if additional is not None and additional.family != 0x02:
            return error(request, 400, reason="ADDITIONAL-ADDRESS-FAMILY must be IPv6")
        if additional is not None and even is not None and even.reserve:
            return error(request, 400, reason="EVEN-PORT reservation in a dual allocation")
        family = 4
        if requested is not None:
            wanted = _FAMILY_BY_WIRE.get(requested.family)
            if wanted is None:
                return error(request, 440)
            family = wanted
        available = core.relays.families()
        if family not in available:
            return error(request, 440)
        refused = core.stats.refused_allocations
        if core.draining:
            refused["draining"] += 1
            return error(request, 508, reason="Draining")
        if core.per_user.get(cred.username, 0) >= self.config.user_quota:
            refused["user_quota"] += 1
            return error(request, 486)
        if core.per_network.get(network_key(ft.client[0]), 0) >= self.config.network_quota:
            refused["network_quota"] += 1
            return error(request, 486, reason="Allocation Quota Reached for this network")
        if len(core.allocations) >= self.config.total_quota:
            refused["total_quota"] += 1
            return error(request, 508)
        reserved_token: bytes | None = None
        if token is not None:
            relay = core.reservations.take(token.token)
            if relay is None:
                core.stats.reservations["refused"] += 1
                return error(request, 508, reason="No such reservation")
            core.stats.reservations["redeemed"] += 1
        elif even is not None:
            pair = core.relays.open_even(family, even.reserve)
            if pair is None:
                refused["relay_ports"] += 1
                return error(request, 508)
            relay, held = pair
            if held is not None:
                reserved_token = core.reserve(held, now)
        else:
            relay = core.relays.open(family)
        if relay is None:
            refused["relay_ports"] += 1
            return error(request, 508)
        relays: dict[int, Relay] = {relay.family: relay}
        extra: list[Attribute] = []
        if reserved_token is not None:
            extra.append(ReservationToken(reserved_token))
        if additional is not None:
            if 6 not in available:
                extra.append(AddressErrorCode(0x02, 440, "Address Family not Supported"))
            else:
                second = core.relays.open(6)
                if second is None:
                    extra.append(AddressErrorCode(0x02, 508, "Insufficient Capacity"))
                else:
                    relays[6] = second
        lifetime = self._allocation_lifetime(request)
        alloc = Allocation(ft, cred.username, cred.key, relays, now + lifetime,
                           float(self.config.max_bps), now)
        core.add_allocation(alloc)
        core.emit(AllocationCreated(ft, cred.username, lifetime, tuple(relays)))
        ip, port = ft.client
        return success(
            request,
            *(XorRelayedAddress(ipaddress.ip_address(r.advertised[0]), r.advertised[1])
              for r in relays.values()),
            *extra,
            Lifetime(lifetime),
            XorMappedAddress(ipaddress.ip_address(ip), port),
        )

    def _allocation_lifetime(self, request: StunMessage) -> int:
        """RFC 8656 §7.2: min(requested, maximum), but never below the default."""
        default, maximum = self.config.default_lifetime, self.config.max_lifetime
        lifetime = request.get(Lifetime)
        if lifetime is None:
            return default
        return max(default, min(lifetime.seconds, maximum))

    # -- Refresh ----------------------------------------------------------------------------

    def refresh(self, request: StunMessage, ft: FiveTuple, cred: Credential, now: float
                ) -> StunMessage:
        core = self.core
        alloc = core.allocations.get(ft)
        if alloc is None:
            return error(request, 437)
        requested = request.get(RequestedAddressFamily)
        if requested is not None and _FAMILY_BY_WIRE.get(requested.family) not in alloc.relays:
            return error(request, 443)
        lifetime_attr = request.get(Lifetime)
        if lifetime_attr is not None and lifetime_attr.seconds == 0:
            core.delete_allocation(alloc, "refresh")
            return success(request, Lifetime(0))
        lifetime = (
            self.config.default_lifetime
            if lifetime_attr is None
            else min(lifetime_attr.seconds, self.config.max_lifetime)
        )
        core.set_allocation_expiry(alloc, now + lifetime)
        return success(request, Lifetime(lifetime))

    # -- permissions and channels -----------------------------------------------------------

    def _peer_check(self, request: StunMessage, ft: FiveTuple, alloc: Allocation,
                    peer: XorPeerAddress, with_port: bool) -> StunMessage | None:
        """400/443/403 for a peer address this allocation may not use, else None."""
        if alloc.relays.get(peer.address.version) is None:
            return error(request, 443)
        reason = self.core.policy.check(str(peer.address), peer.port if with_port else None)
        if reason is not None:
            self.core.stats.peer_denied[reason] += 1
            self.core.emit(PeerDenied(ft, _METHOD_NAMES.get(request.method, "?"), reason))
            return error(request, 403)
        return None

    def create_permission(self, request: StunMessage, ft: FiveTuple, cred: Credential,
                          now: float) -> StunMessage:
        alloc = self.core.allocations.get(ft)
        if alloc is None:
            return error(request, 437)
        peers = request.get_all(XorPeerAddress)
        if not peers:
            return error(request, 400, reason="XOR-PEER-ADDRESS missing")
        for peer in peers:
            refusal = self._peer_check(request, ft, alloc, peer, with_port=False)
            if refusal is not None:
                return refusal
        for peer in peers:
            self.core.install_permission(alloc, str(peer.address), now)
        return success(request)

    def channel_bind(self, request: StunMessage, ft: FiveTuple, cred: Credential, now: float
                     ) -> StunMessage:
        alloc = self.core.allocations.get(ft)
        if alloc is None:
            return error(request, 437)
        number = request.get(ChannelNumber)
        peer = request.get(XorPeerAddress)
        if number is None or peer is None:
            return error(request, 400, reason="CHANNEL-NUMBER and XOR-PEER-ADDRESS required")
        if not is_valid_channel_number(number.number,
                                       allow_rfc5766_range=self.config.rfc5766_channels):
            return error(request, 400, reason="Channel number out of range")
        refusal = self._peer_check(request, ft, alloc, peer, with_port=True)
        if refusal is not None:
            return refusal
        addr = (str(peer.address), peer.port)
        bound = alloc.channels.get(number.number)
        if bound is not None and bound.peer != addr:
            return error(request, 400, reason="Channel bound to another peer")
        other = alloc.channel_by_peer.get(addr)
        if other is not None and other != number.number:
            return error(request, 400, reason="Peer bound to another channel")
        relay = alloc.relays[peer.address.version]
        self.core.bind_channel(alloc, number.number, addr, relay, now)
        return success(request)

    # -- Send indication --------------------------------------------------------------------

    def send_indication(self, message: StunMessage, ft: FiveTuple, now: float) -> None:
        core = self.core
        stats = core.stats
        alloc = core.allocations.get(ft)
        if alloc is None:
            stats.dropped["no_allocation"] += 1
            return
        peer = message.get(XorPeerAddress)
        data = message.get(Data)
        if peer is None or data is None:
            stats.dropped["malformed"] += 1
            return
        relay = alloc.relays.get(peer.address.version)
        if relay is None:
            stats.dropped["family_mismatch"] += 1
            return
        ip = str(peer.address)
        reason = core.policy.check(ip, peer.port)
        if reason is not None:
            stats.peer_denied[reason] += 1
            core.emit(PeerDenied(ft, "send", reason))
            return
        if ip not in alloc.permissions:
            stats.dropped["no_permission"] += 1
            return
        payload = data.data
        bucket = alloc.out_bucket
        if bucket is not None and not bucket.take(now, len(payload)):
            stats.dropped["bandwidth"] += 1
            return
        stats.packets_to_peers += 1
        stats.bytes_to_peers += len(payload)
        core.send(ToPeer(relay, (ip, peer.port), payload))


__all__ = ["RequestHandler"]
