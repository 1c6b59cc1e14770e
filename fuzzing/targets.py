"""The fuzz targets: one function per harness, bytes in, and only the documented error types
may come out.

Each target drives a parser the way the running system does, and then some: parsed values are
walked and encoded again, so a value the parser accepts but its own encoder chokes on is a
finding too. A target that raises anything but its component's own error type has found a bug
(atheris reports it as a crash and keeps the input).

Inputs are used as they are, with two structure-aware steps where a fuzzer could never get past
a MAC on its own:

- ``stun_turn``: a datagram that parses as a request or indication is also sent re-signed with
  valid long-term credentials and the current nonce, so Allocate, CreatePermission,
  ChannelBind, Refresh and Send are reached with the fuzzer's own attributes;
- ``signaling``: ``@token@`` in a message is replaced by a valid join token for this router,
  so messages after ``join`` (publish, answer, chat, relay, leave) are reached.

The targets are plain functions, imported by :mod:`fuzzing.run` under atheris's
instrumentation, and by the pytest smoke run without it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

TargetFn = Callable[[bytes], None]

# --- STUN / TURN ----------------------------------------------------------------------------


class _TurnRig:
    """A TURN core with a fake relay allocator, and a client's credentials for it."""

    SECRET = "fuzz-secret"
    REGION = "fuzz"
    CLIENT = ("203.0.113.5", 40000)
    SERVER = ("192.0.2.1", 3478)

    def __init__(self) -> None:
        from turn.server.auth import mint_rest_credentials
        from turn.server.config import TurnConfig
        from turn.stun import long_term_key

        self.config = TurnConfig(region=self.REGION, auth_secret=[self.SECRET])
        self.username, password = mint_rest_credentials(
            self.SECRET, self.REGION, "fuzzer", 3600, time.time())
        self.key = long_term_key(self.username, self.config.realm, password)
        self.core: Any = None
        self.nonce = ""
        self.now = 0.0
        self.inputs = 0

    def fresh(self) -> None:
        """A new core every few hundred inputs, so state built by earlier inputs (allocations,
        permissions, budgets) is exercised without growing for ever."""
        from turn.server.allocation import FiveTuple
        from turn.server.core import TurnServerCore
        from turn.server.peer_policy import PeerPolicy

        self.core = TurnServerCore(
            self.config, _FakeAllocator(),
            policy=PeerPolicy(own_endpoints=[self.SERVER], relay_ips=["198.51.100.7"],
                              relay_ports=(50000, 50009)),
            nonce_key=b"k" * 32, wall_offset=time.time())
        self.five_tuple = FiveTuple("udp", self.CLIENT, self.SERVER)
        self.nonce = ""
        self.now = 0.0

    def send(self, data: bytes) -> list[bytes]:
        from turn.server.core import ToClient

        self.core.receive_datagram(data, self.five_tuple, self.now)
        out = self.core.datagrams_to_send(self.now)
        return [o.data for o in out if isinstance(o, ToClient)]

    def signed(self, message: Any) -> bytes:
        """``message`` with valid USERNAME, REALM, NONCE and MESSAGE-INTEGRITY."""
        from turn.stun import MessageClass as Cls
        from turn.stun import Method as M
        from turn.stun import Nonce, Realm, RequestedTransport, Software, StunMessage, Username

        if not self.nonce:
            challenge = StunMessage(M.ALLOCATE, Cls.REQUEST, bytes(12),
                                    (RequestedTransport(17), Software("regio-fuzz-client")))
            for reply in self.send(challenge.encode(fingerprint=True)):
                with contextlib.suppress(Exception):
                    nonce = _parse_stun(reply).get(Nonce)
                    if nonce is not None:
                        self.nonce = nonce.value
        kept = tuple(a for a in message.attributes
                     if not isinstance(a, Username | Realm | Nonce))
        rebuilt = StunMessage(message.method, message.cls, message.transaction_id,
                              (*kept, Username(self.username), Realm(self.config.realm),
                               Nonce(self.nonce or "none")))
        return bytes(rebuilt.encode(integrity_key=self.key, fingerprint=True))


class _FakeRelay:
    def __init__(self, address: tuple[str, int], family: int) -> None:
        self.address = address
        self.family = family
        self.allocation: Any = None

    @property
    def advertised(self) -> tuple[str, int]:
        return self.address


class _FakeAllocator:
    """Relay addresses without sockets (the core is sans-IO; the driver owns sockets)."""

    def __init__(self) -> None:
        self.ports = list(range(50000, 50010))

    def families(self) -> frozenset[int]:
        return frozenset({4, 6})

    def open(self, family: int) -> _FakeRelay | None:
        if not self.ports:
            return None
        return _FakeRelay(("198.51.100.7" if family == 4 else "2001:db8::7",
                           self.ports.pop(0)), family)

    def close(self, relay: Any) -> None:
        self.ports.append(relay.address[1])

    def open_even(self, family: int, reserve_next: bool
                  ) -> tuple[_FakeRelay, _FakeRelay | None] | None:
        ip = "198.51.100.7" if family == 4 else "2001:db8::7"
        for port in sorted(self.ports):
            if port % 2 == 0 and (not reserve_next or port + 1 in self.ports):
                self.ports.remove(port)
                held = None
                if reserve_next:
                    self.ports.remove(port + 1)
                    held = _FakeRelay((ip, port + 1), family)
                return _FakeRelay((ip, port), family), held
        return None


def _parse_stun(data: bytes) -> Any:
    from turn.stun import parse_message

    return parse_message(data)


_TURN: _TurnRig | None = None


def stun_turn(data: bytes) -> None:
    """STUN/TURN codec (message, ChannelData, stream framing) and the TURN server core."""
    from turn.stun import (
        MessageClass,
        StreamReassembler,
        StunDecodeError,
        StunEncodeError,
        StunFramingError,
        decode_channel_data,
        is_channel_data,
        is_stun,
        parse_message,
        peek_header,
    )

    global _TURN
    is_stun(data)
    is_channel_data(data)
    with contextlib.suppress(StunDecodeError):
        peek_header(data)
    with contextlib.suppress(StunDecodeError):
        decode_channel_data(data)
    message = None
    with contextlib.suppress(StunDecodeError):
        message = parse_message(data, check_fingerprint=False)
    if message is not None:
        message.integrity_ok(b"k")
        message.integrity_sha256_ok(b"k")
        with contextlib.suppress(StunEncodeError):
            parse_message(message.encode(fingerprint=True))
    # The same bytes as a TCP/TLS stream, in two reads.
    reassembler = StreamReassembler()
    with contextlib.suppress(StunFramingError):
        cut = data[0] % (len(data) + 1) if data else 0
        for chunk in (data[:cut], data[cut:]):
            reassembler.receive_data(chunk)
            while reassembler.next_frame() is not None:
                pass
    # The server core, unauthenticated and (for requests and indications) signed.
    if _TURN is None:
        _TURN = _TurnRig()
    rig = _TURN
    if rig.inputs % 500 == 0:
        rig.fresh()
    rig.inputs += 1
    rig.now += 0.25
    rig.send(data)
    if message is not None and message.cls in (MessageClass.REQUEST, MessageClass.INDICATION):
        with contextlib.suppress(StunEncodeError):
            rig.send(rig.signed(message))
    if data[:1] and 0x40 <= data[0] <= 0x7F:
        rig.send(data)  # ChannelData, now perhaps on a channel the signed request bound
    rig.core.handle_timer(rig.now)
    rig.core.datagrams_to_send(rig.now)


# --- RTP / RTCP ----------------------------------------------------------------------------

def rtp_rtcp(data: bytes) -> None:
    """RTP packets (header, CSRCs, RFC 8285 extensions, padding), the forwarder's object-free
    accessors (the transport-wide sequence reader's compiled twin against its reference), and
    RTCP compounds (SR/RR/SDES/BYE/APP/XR, NACK/PLI/FIR/REMB/TWCC)."""
    import router.forwarding._fanout as compiled_forwarding
    from router.forwarding.transport_seq import py_read_transport_seq
    from router.rtp import (
        RtcpDecodeError,
        RtcpEncodeError,
        RtpDecodeError,
        RtpEncodeError,
        build_rtcp_compound,
        find_rtp_extension,
        is_rtcp,
        is_rtp,
        is_rtp_or_rtcp,
        parse_rtcp_compound,
        read_rtp_header_fields,
    )
    from router.rtp.rtp_packet import RtpPacket

    is_rtp_or_rtcp(data)
    is_rtp(data)
    is_rtcp(data)
    with contextlib.suppress(RtpDecodeError):
        read_rtp_header_fields(data)
    for ext_id in (1, 3, 15):
        with contextlib.suppress(RtpDecodeError):
            find_rtp_extension(data, ext_id)
    for ext_id in (1, 3, 14, 15, 255):
        if compiled_forwarding.read_transport_seq(data, ext_id) != py_read_transport_seq(
            data, ext_id
        ):
            raise AssertionError("compiled transport-wide sequence reader disagrees")
    try:
        packet = RtpPacket.parse(data)
    except RtpDecodeError:
        packet = None
    if packet is not None:
        if packet.extension is not None:
            for ext_id in range(16):
                packet.extension.get(ext_id)
        with contextlib.suppress(RtpEncodeError):
            again = RtpPacket.parse(packet.build())
            if again.sequence_number != packet.sequence_number or again.ssrc != packet.ssrc:
                raise AssertionError("RTP packet changed on a round trip")
    try:
        packets = parse_rtcp_compound(data)
    except RtcpDecodeError:
        return
    for rtcp in packets:
        repr(rtcp)
    with contextlib.suppress(RtcpEncodeError, RtcpDecodeError):
        parse_rtcp_compound(build_rtcp_compound(packets))


# --- SDP -----------------------------------------------------------------------------------

_LOCAL: Any = None


def sdp(data: bytes) -> None:
    """SDP parsing, description (validation) and the publisher answer the router builds."""
    from router.sdp import (
        Fingerprint,
        LocalTransportParams,
        SdpError,
        answer_publisher_offer,
        describe,
        host_candidate,
        parse_sdp,
    )

    global _LOCAL
    if _LOCAL is None:
        _LOCAL = LocalTransportParams(
            ice_ufrag="rgio", ice_pwd="regioregioregioregio0123",
            fingerprint=Fingerprint("sha-256", bytes(range(32))),
            candidates=(host_candidate("127.0.0.1", 40000),), session_id="4242")
    with contextlib.suppress(SdpError):
        describe(parse_sdp(data))
    with contextlib.suppress(SdpError):
        answer_publisher_offer(data, _LOCAL)
    text = data.decode("utf-8", "replace")
    with contextlib.suppress(SdpError):
        answer_publisher_offer(text, _LOCAL)


# --- signaling JSON ------------------------------------------------------------------------

class _SignalingRig:
    """A router's session core without sockets, and a key to mint valid join tokens."""

    def __init__(self) -> None:
        import random

        from control.schema import SecretKey
        from router.node import make_media_plane
        from router.sdp import host_candidate
        from router.session.config import SessionConfig
        from router.session.core import SessionCore
        from router.transport import TransportMux
        from router.transport.certificate import process_certificate
        from router.transport.config import TransportConfig

        self.key = SecretKey("fuzz", "ZnV6ei1rZXktZnV6ei1rZXktZnV6ei1rZXktZnV6eg", 0, None)
        self.core = SessionCore(
            node_id="fuzz-router", keys=lambda: {self.key.kid: self.key},
            mux=TransportMux(TransportConfig()), media=make_media_plane(),
            certificate=process_certificate(),
            candidates=(host_candidate("127.0.0.1", 40000),),
            config=SessionConfig(message_rate=1e9, message_burst=1e9),
            rng=random.Random(7))
        self.now = 0.0

    def token(self, room: str) -> bytes:
        from control.tokens import JoinClaims, sign_token

        now = int(time.time())
        claims = JoinClaims(kid=self.key.kid, room=room, participant=f"p{self.now:.0f}",
                            router="fuzz-router", region="fuzz", policy="eea", mode="sfu",
                            expires_at=now + 300, issued_at=now, name=None)
        return sign_token(claims, self.key).encode()


_SIGNALING: _SignalingRig | None = None


def signaling(data: bytes) -> None:
    """Signaling messages (one per line of the input) through the router's session core, with
    the join token placeholder ``@token@`` made valid."""
    from control.tokens import TokenError, peek_kid
    from router.session.messages import (
        MessageError,
        check_relay_payload,
        parse_client_message,
    )

    global _SIGNALING
    for line in data.split(b"\n"):
        try:
            message = parse_client_message(line, 65536)
        except MessageError:
            continue
        if message.type == "relay":
            with contextlib.suppress(MessageError):
                check_relay_payload(message.fields["payload"])
        if message.type == "join":
            with contextlib.suppress(TokenError):
                peek_kid(message.fields["token"])
    if _SIGNALING is None:
        _SIGNALING = _SignalingRig()
    rig = _SIGNALING
    core = rig.core
    rig.now += 100.0  # past every join timeout and grace period of the previous input
    core.handle_timer(rig.now)
    conn = core.open_connection(rig.now)
    room = b"room%d" % (data[0] % 4 if data else 0)
    for line in data.replace(b"@token@", rig.token(room.decode())).split(b"\n"):
        core.receive_message(conn, line, rig.now, time.time())
        rig.now += 0.001
    core.connection_lost(conn, rig.now)
    core.messages_to_send()
    core.closes_to_send()
    core.room_notices()


# --- front door HTTP -----------------------------------------------------------------------

def frontdoor_http(data: bytes) -> None:
    """The front door's HTTP/1.1 request parser (the bytes split into two reads), and for each
    request what the server does next without the network: the join path, the client address
    behind a trusted proxy and the join body."""
    from geo.client_address import client_address, parse_trusted_proxies
    from geo.frontdoor.fastserver import _join_room
    from geo.frontdoor.http11 import HttpError, RequestParser
    from geo.frontdoor.service import BadRequest, parse_join_body

    trusted = parse_trusted_proxies(["127.0.0.1/32"])
    with contextlib.suppress(BadRequest):
        parse_join_body(data)  # the input as a body on its own: no framing to get right first
    cut = data[0] % (len(data) + 1) if data else 0
    parser = RequestParser()
    try:
        for chunk in (data[:cut], data[cut:]):
            parser.feed(chunk)
            while (request := parser.next_request()) is not None:
                room = _join_room(request.path)
                client_address("127.0.0.1", request.headers, trusted)
                client_address("127.0.0.1", request.headers, trusted, header="forwarded")
                if room is not None:
                    with contextlib.suppress(BadRequest):
                        parse_join_body(request.body)
    except HttpError:
        pass


#: The modules each target is about: atheris instruments these (and only these, so a
#: harness starts in a second or two), and :func:`load_components` imports them.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "stun_turn": ("turn.stun", "turn.server"),
    "rtp_rtcp": ("router.rtp",),
    "sdp": ("router.sdp",),
    "signaling": ("router.session", "control.tokens", "control.jsonlimits"),
    "frontdoor_http": ("geo.frontdoor.http11", "geo.frontdoor.fastserver",
                       "geo.frontdoor.service", "geo.client_address", "geo.forwarded",
                       "geo.addresses", "control.jsonlimits"),
}
_SUBMODULES: dict[str, tuple[str, ...]] = {
    "turn.server": ("turn.server.core", "turn.server.requests", "turn.server.auth",
                    "turn.server.peer_policy", "turn.server.allocation"),
    "router.sdp": ("router.sdp.answer", "router.sdp.subscriber"),
    "router.session": ("router.session.core", "router.session.messages"),
}


def load_components(target: str) -> None:
    """Import the modules ``target`` is about (atheris instruments modules as they are first
    imported, so :mod:`fuzzing.run` calls this inside its instrumentation context)."""
    import importlib

    for module in COMPONENTS[target]:
        importlib.import_module(module)
        for sub in _SUBMODULES.get(module, ()):
            importlib.import_module(sub)


TARGETS: dict[str, TargetFn] = {
    "stun_turn": stun_turn,
    "rtp_rtcp": rtp_rtcp,
    "sdp": sdp,
    "signaling": signaling,
    "frontdoor_http": frontdoor_http,
}

__all__ = ["COMPONENTS", "TARGETS", "TargetFn", "frontdoor_http", "load_components",
           "rtp_rtcp", "sdp", "signaling", "stun_turn"]
