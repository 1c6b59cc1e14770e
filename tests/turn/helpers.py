"""Test helpers: a fake relay allocator and a minimal TURN client built on the codec."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from turn.server.allocation import Addr, Allocation
from turn.server.auth import mint_rest_credentials
from turn.server.config import TurnConfig
from turn.server.core import ToClient, ToPeer, TurnServerCore
from turn.server.peer_policy import PeerPolicy
from turn.stun import (
    TRANSPORT_UDP,
    Attribute,
    ChannelNumber,
    Data,
    ErrorCode,
    Lifetime,
    MessageClass,
    Method,
    Nonce,
    Realm,
    RequestedTransport,
    Software,
    StunMessage,
    Username,
    XorPeerAddress,
    long_term_key,
    parse_message,
)

SECRET = "s3cret"
REGION = "eu-west"
WALL = 1_700_000_000.0
SERVER: Addr = ("192.0.2.1", 3478)


@dataclass(eq=False)
class FakeRelay:
    address: Addr
    family: int = 4
    allocation: Allocation | None = None

    @property
    def advertised(self) -> Addr:
        return self.address


@dataclass
class FakeAllocator:
    ports: list[int] = field(default_factory=lambda: list(range(50000, 50010)))
    fams: frozenset[int] = frozenset({4, 6})
    opened: list[FakeRelay] = field(default_factory=list)

    def families(self) -> frozenset[int]:
        return self.fams

    def open(self, family: int) -> FakeRelay | None:
        if not self.ports:
            return None
        ip = "198.51.100.7" if family == 4 else "2001:db8::7"
        relay = FakeRelay((ip, self.ports.pop(0)), family)
        self.opened.append(relay)
        return relay

    def close(self, relay: FakeRelay) -> None:  # type: ignore[override]
        self.ports.append(relay.address[1])

    def open_even(self, family: int, reserve_next: bool
                  ) -> tuple[FakeRelay, FakeRelay | None] | None:
        ip = "198.51.100.7" if family == 4 else "2001:db8::7"
        for port in sorted(self.ports):
            if port % 2 == 0 and (not reserve_next or port + 1 in self.ports):
                self.ports.remove(port)
                relay = FakeRelay((ip, port), family)
                held = None
                if reserve_next:
                    self.ports.remove(port + 1)
                    held = FakeRelay((ip, port + 1), family)
                self.opened.append(relay)
                return relay, held
        return None


def make_core(**overrides: object) -> tuple[TurnServerCore, FakeAllocator]:
    cfg = TurnConfig(region=REGION, auth_secret=[SECRET], **overrides)  # type: ignore[arg-type]
    alloc = FakeAllocator()
    policy = PeerPolicy(allow=cfg.allow_peer, own_endpoints=[SERVER],
                        relay_ips=["198.51.100.7", "2001:db8::7"], relay_ports=(50000, 50009))
    core = TurnServerCore(cfg, alloc, policy=policy, nonce_key=b"k" * 32, wall_offset=WALL)
    return core, alloc


def tid() -> bytes:
    return os.urandom(12)


class Client:
    """Builds authenticated requests for one five-tuple against a core."""

    def __init__(self, core: TurnServerCore, five_tuple: object, *, participant: str = "alice",
                 region: str = REGION, ttl: float = 3600, secret: str = SECRET,
                 realm: str | None = None) -> None:
        self.core = core
        self.ft = five_tuple
        self.username, self.password = mint_rest_credentials(secret, region, participant, ttl,
                                                             WALL)
        self.realm = realm or core.config.realm
        self.nonce = ""
        self.now = 0.0

    @property
    def key(self) -> bytes:
        return long_term_key(self.username, self.realm, self.password)

    def raw(self, data: bytes) -> list[bytes]:
        self.core.receive_datagram(data, self.ft, self.now)  # type: ignore[arg-type]
        return [o.data for o in self.core.datagrams_to_send(self.now)
                if isinstance(o, ToClient)]

    def request(self, method: int, *attrs: Attribute, auth: bool = True,
                nonce: str | None = None) -> StunMessage | None:
        if auth and not self.nonce and nonce is None:
            self.challenge(method)
        extra: tuple[Attribute, ...] = ()
        if auth:
            extra = (Username(self.username), Realm(self.realm),
                     Nonce(self.nonce if nonce is None else nonce))
        msg = StunMessage(method, MessageClass.REQUEST, tid(), (*attrs, *extra))
        data = msg.encode(integrity_key=self.key if auth else None, fingerprint=True)
        out = self.raw(data)
        if not out:
            return None
        response = parse_message(out[-1])
        nonce_attr = response.get(Nonce)
        if nonce_attr is not None:
            self.nonce = nonce_attr.value
        return response

    def challenge(self, method: int = Method.ALLOCATE) -> StunMessage | None:
        # Real clients' first requests are bigger than a bare header; a SOFTWARE attribute
        # makes room for the challenge (which may never be larger than the request).
        msg = StunMessage(method, MessageClass.REQUEST, tid(),
                          (RequestedTransport(TRANSPORT_UDP), Lifetime(600),
                           Software("regio-test-client")))
        out = self.raw(msg.encode(fingerprint=True))
        if not out:
            return None
        response = parse_message(out[-1])
        nonce_attr = response.get(Nonce)
        if nonce_attr is not None:
            self.nonce = nonce_attr.value
        return response

    def allocate(self, *attrs: Attribute) -> StunMessage | None:
        return self.request(Method.ALLOCATE, RequestedTransport(TRANSPORT_UDP), *attrs)

    def permission(self, ip: str, port: int = 9) -> StunMessage | None:
        return self.request(Method.CREATE_PERMISSION,
                            XorPeerAddress(ipaddress.ip_address(ip), port))

    def bind(self, number: int, ip: str, port: int) -> StunMessage | None:
        return self.request(Method.CHANNEL_BIND, ChannelNumber(number),
                            XorPeerAddress(ipaddress.ip_address(ip), port))

    def send(self, ip: str, port: int, payload: bytes) -> list[ToPeer]:
        msg = StunMessage(Method.SEND, MessageClass.INDICATION, tid(),
                          (XorPeerAddress(ipaddress.ip_address(ip), port), Data(payload)))
        self.core.receive_datagram(msg.encode(), self.ft, self.now)  # type: ignore[arg-type]
        return [o for o in self.core.datagrams_to_send(self.now) if isinstance(o, ToPeer)]


def code(response: StunMessage | None) -> int | None:
    """200 for success, the error code for an error, None for no answer."""
    if response is None:
        return None
    if response.cls == MessageClass.SUCCESS:
        return 200
    err = response.get(ErrorCode)
    return err.code if err else -1
