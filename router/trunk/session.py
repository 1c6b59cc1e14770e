"""One trunk between two routers, sans-IO: the QUIC control connection plus its SRTP contexts.

Lifecycle: QUIC handshake (TLS 1.3, both sides present a cluster certificate) -> the peer's
certificate is checked (chains to the cluster CA, names a node id, the node is a registered
router, and for the dialling side it is the node we meant to reach) -> each side sends
:class:`~router.trunk.messages.Hello` and its first sending key on the one control stream ->
:class:`TrunkUp`. Any failure before that is a :class:`TrunkRefused` with a counter label;
any protocol breach after it a :class:`TrunkClosed` with the reason. Either way only this trunk
ends.

Media does not travel in QUIC (a lost packet would stall every later one on the stream; RTP
wants loss, not delay): each direction has its own SRTP master key (AEAD_AES_128_GCM),
announced by its sender over the control stream and used only once the receiver acknowledged
it. Keys rotate every ``key_lifetime`` seconds; the receiver keeps the previous key for
``key_overlap`` seconds so packets already in flight still authenticate.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from aioquic.quic import events as qe
from aioquic.quic.connection import QuicConnection
from cryptography import x509

from control.cluster_ca import CertificateRefused, verify_node_certificate
from router.transport.events import Address
from router.transport.srtp import AEAD_AES_128_GCM, SrtpContext
from router.trunk.messages import (
    FrameReader,
    Hello,
    SrtpKey,
    SrtpKeyAck,
    TrunkDecodeError,
    TrunkMessage,
    encode_message,
)
from router.trunk.quic import peer_certificate

KEY_BYTES = AEAD_AES_128_GCM.key_length + AEAD_AES_128_GCM.salt_length
#: QUIC application error codes of a trunk close.
ERROR_REFUSED = 0x101
ERROR_PROTOCOL = 0x102
ERROR_SHUTDOWN = 0x0


@dataclass(frozen=True, slots=True)
class TrunkConfig:
    """Timing of a trunk."""

    idle_timeout: float = 15.0
    """QUIC idle timeout: a silent peer is gone after this long."""
    keepalive: float = 2.0
    """Seconds between QUIC PINGs while nothing else is sent."""
    key_lifetime: float = 3600.0
    """Seconds before a sending key is replaced."""
    key_overlap: float = 10.0
    """Seconds a receiver keeps accepting the previous key after a new one arrived."""


def covers(cert_node: str, node: str) -> bool:
    """A node certificate covers its node and the node's workers (``<node>-w<k>``, the
    processes of ``regio router --workers``), which register under those ids."""
    if node == cert_node:
        return True
    suffix = node[len(cert_node) + 2:] if node.startswith(cert_node + "-w") else ""
    return suffix.isdigit()


class TrunkEvent:
    """Base of the events :meth:`TrunkSession.next_event` returns."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class TrunkUp(TrunkEvent):
    """Both hellos exchanged and keys in place: media and control may flow."""

    peer: str
    region: str
    jurisdiction: str


@dataclass(frozen=True, slots=True)
class TrunkControl(TrunkEvent):
    """A control message for the router (announce, subscribe, keyframe, link report...)."""

    message: TrunkMessage


@dataclass(frozen=True, slots=True)
class TrunkRefused(TrunkEvent):
    """The peer failed authentication; ``reason`` is a counter label."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class TrunkClosed(TrunkEvent):
    """The trunk ended (protocol breach, peer closed, idle timeout, local close)."""

    reason: str


@dataclass(slots=True)
class MediaStats:
    """Trunk media counters (both directions)."""

    rtp_out: int = 0
    rtcp_out: int = 0
    rtp_in: int = 0
    rtcp_in: int = 0
    auth_failures: int = 0
    """Inbound packets no current key authenticates (spoofed or corrupted)."""
    replay_failures: int = 0
    """Inbound packets whose SRTP index was already seen (replayed)."""
    no_key: int = 0
    """Packets dropped because no key was agreed yet for that direction."""
    rekeys_sent: int = 0
    rekeys_received: int = 0


@dataclass(slots=True)
class _InboundKey:
    key_id: int
    context: SrtpContext
    retire_at: float | None = None


class TrunkSession:
    """A trunk's control connection and media keys (see the module docstring)."""

    def __init__(self, conn: QuicConnection, *, local: Hello, ca: x509.Certificate,
                 is_registered: Callable[[str], bool], peer_address: Address, now: float,
                 expected_peer: str | None = None, config: TrunkConfig | None = None,
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self.conn = conn
        self.local = local
        self.ca = ca
        self.is_registered = is_registered
        self.peer_address = peer_address
        self.expected_peer = expected_peer
        self.config = config or TrunkConfig()
        self.random_bytes = random_bytes
        self.is_client = conn.configuration.is_client
        self.peer: Hello | None = None
        self.peer_node: str | None = None
        """The peer's node id once verified (dialled: at the handshake; accepted: at hello)."""
        self.cert_node: str | None = None
        """The node id the peer's certificate names."""
        self.state = "handshake"
        self.media = MediaStats()
        self._events: deque[TrunkEvent] = deque()
        self._reader = FrameReader()
        self._stream: int | None = None
        self._sent = 0
        self._next_key_id = 0
        self._out: SrtpContext | None = None
        self._out_pending: tuple[int, bytes] | None = None
        self._inbound: list[_InboundKey] = []
        self._rotate_at: float | None = None
        self._ping_at = now + self.config.keepalive
        self._ping_id = 0
        if self.is_client:
            conn.connect(peer_address, now)

    # -- state ----------------------------------------------------------------------------

    @property
    def established(self) -> bool:
        return self.state == "up"

    @property
    def closed(self) -> bool:
        return self.state == "closed"

    @property
    def can_send_media(self) -> bool:
        return self._out is not None and self.state == "up"

    # -- sans-IO interface ----------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        self.conn.receive_datagram(data, addr, now)
        self._process(now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        return [(data, addr) for data, addr in self.conn.datagrams_to_send(now)]

    def get_timer(self) -> float | None:
        deadlines = [self.conn.get_timer()]
        if self.state == "up":
            deadlines += [self._rotate_at, self._ping_at]
            deadlines += [k.retire_at for k in self._inbound]
        present = [d for d in deadlines if d is not None]
        return min(present) if present else None

    def handle_timer(self, now: float) -> None:
        quic_deadline = self.conn.get_timer()
        if quic_deadline is not None and quic_deadline <= now:
            self.conn.handle_timer(now)  # also after a close: QUIC finishes its closing period
        if self.state == "up":
            if self._rotate_at is not None and self._rotate_at <= now:
                self._offer_key(now)
            self._inbound = [k for k in self._inbound if k.retire_at is None or k.retire_at > now]
            if self._ping_at <= now:
                self._ping_id += 1
                self.conn.send_ping(self._ping_id)
                self._ping_at = now + self.config.keepalive
        self._process(now)

    def next_event(self) -> TrunkEvent | None:
        return self._events.popleft() if self._events else None

    # -- API ------------------------------------------------------------------------------

    def send(self, message: TrunkMessage, now: float) -> None:
        """Queue a control message (only once the trunk is up)."""
        if self.state != "up" or self._stream is None:
            raise RuntimeError(f"trunk is {self.state}, cannot send {message.TYPE}")
        self._write(message)
        self._ping_at = now + self.config.keepalive

    def close(self, reason: str = "closed locally", code: int = ERROR_SHUTDOWN) -> None:
        if self.closed:
            return
        self.conn.close(error_code=code, reason_phrase=reason[:200])
        self._end(TrunkClosed(reason))

    # -- media ----------------------------------------------------------------------------

    def protect_rtp_batch(self, packets: list[bytes], out: list[tuple[bytes, Address]],
                          dest: Address) -> int:
        ctx = self._out
        if ctx is None or self.state != "up":
            self.media.no_key += len(packets)
            return 0
        sent = ctx.protect_rtp_batch(packets, dest, out)
        self.media.rtp_out += sent
        return sent

    def protect_rtcp(self, packet: bytes) -> bytes | None:
        ctx = self._out
        if ctx is None or self.state != "up":
            self.media.no_key += 1
            return None
        protected = ctx.protect_rtcp(packet)
        if protected is not None:
            self.media.rtcp_out += 1
        return protected

    def unprotect(self, data: bytes, rtcp: bool) -> bytes | None:
        """Plain RTP/RTCP from a trunk packet, or None (counted: spoofed, replayed, no key)."""
        keys = self._inbound
        if not keys:
            self.media.no_key += 1
            return None
        newest = keys[-1].context.stats
        auth, replay = newest.auth_failures, newest.replay_failures
        for entry in reversed(keys):
            ctx = entry.context
            plain = ctx.unprotect_rtcp(data) if rtcp else ctx.unprotect_rtp(data)
            if plain is not None:
                if rtcp:
                    self.media.rtcp_in += 1
                else:
                    self.media.rtp_in += 1
                return bytes(plain)
        if newest.replay_failures > replay:
            self.media.replay_failures += 1
        else:
            self.media.auth_failures += 1
        del auth
        return None

    # -- internals ------------------------------------------------------------------------

    def _write(self, message: TrunkMessage) -> None:
        assert self._stream is not None
        self.conn.send_stream_data(self._stream, encode_message(message, self._sent))
        self._sent += 1

    def _end(self, event: TrunkEvent) -> None:
        self.state = "closed"
        self._out = None
        self._inbound.clear()
        self._events.append(event)

    def _refuse(self, reason: str, detail: str) -> None:
        self.conn.close(error_code=ERROR_REFUSED, reason_phrase=reason)
        self._end(TrunkRefused(reason, detail))

    def _breach(self, detail: str) -> None:
        self.conn.close(error_code=ERROR_PROTOCOL, reason_phrase=detail[:200])
        self._end(TrunkClosed(f"protocol error: {detail}"))

    def _process(self, now: float) -> None:
        while True:
            event = self.conn.next_event()
            if event is None:
                return
            if self.closed:
                continue  # nothing more is read from a closed trunk
            if isinstance(event, qe.HandshakeCompleted):
                self._verify_peer(now)
            elif isinstance(event, qe.StreamDataReceived):
                self._on_stream(event, now)
            elif isinstance(event, qe.ConnectionTerminated):
                if self.state == "handshake":
                    self._end(TrunkRefused("handshake_failed", event.reason_phrase or
                                           f"QUIC error {event.error_code}"))
                else:
                    self._end(TrunkClosed(f"peer closed: {event.reason_phrase or 'no reason'}"))
            elif isinstance(event, qe.StreamReset):
                self._breach("control stream reset")

    def _verify_peer(self, now: float) -> None:
        cert = peer_certificate(self.conn)
        if cert is None:
            self._refuse("no_certificate", "the peer presented no certificate")
            return
        try:
            node = verify_node_certificate(cert, self.ca)
        except CertificateRefused as exc:
            self._refuse(exc.reason, str(exc))
            return
        self.cert_node = node
        if self.expected_peer is not None:
            # The dialling side knows whom it called: check it before saying anything.
            if not self._admit(self.expected_peer):
                return
            self.peer_node = self.expected_peer
        self.state = "verified"
        if self.is_client:
            self._stream = self.conn.get_next_available_stream_id()
            self._write(self.local)

    def _admit(self, node: str) -> bool:
        """The peer may be ``node``: its certificate covers it, it is not us, it is registered."""
        assert self.cert_node is not None
        if not covers(self.cert_node, node):
            self._refuse("wrong_node", f"certificate names {self.cert_node}, not {node}")
            return False
        if node == self.local.node:
            self._refuse("wrong_node", "the peer claims to be this router")
            return False
        if not self.is_registered(node):
            self._refuse("unregistered", f"{node} is not a registered router")
            return False
        return True

    def _on_stream(self, event: qe.StreamDataReceived, now: float) -> None:
        if self.state == "handshake":
            self._breach("stream data before authentication")
            return
        if self._stream is None and not self.is_client and event.stream_id == 0:
            self._stream = 0
        if event.stream_id != self._stream:
            self._breach(f"unexpected stream {event.stream_id}")
            return
        if event.end_stream:
            self._breach("control stream ended")
            return
        try:
            messages = self._reader.feed(event.data)
        except TrunkDecodeError as exc:
            self._breach(str(exc))
            return
        for message in messages:
            if self.closed:
                return
            self._on_message(message, now)

    def _on_message(self, message: TrunkMessage, now: float) -> None:
        if isinstance(message, Hello):
            if self.peer is not None:
                self._breach("second hello")
            elif self.peer_node is None and not self._admit(message.node):
                return
            elif self.peer_node is not None and message.node != self.peer_node:
                self._breach(f"hello names {message.node}, we called {self.peer_node}")
            else:
                self.peer_node = message.node
                self.peer = message
                if not self.is_client:
                    self._write(self.local)
                self._offer_key(now)
            return
        if self.peer is None:
            self._breach(f"{message.TYPE} before hello")
            return
        if isinstance(message, SrtpKey):
            self._install_inbound(message, now)
        elif isinstance(message, SrtpKeyAck):
            self._on_key_ack(message, now)
        elif self.state != "up":
            self._breach(f"{message.TYPE} before keys were agreed")
        else:
            self._events.append(TrunkControl(message))

    def _offer_key(self, now: float) -> None:
        if self._out_pending is not None:
            return  # the previous offer is still unanswered
        key = self.random_bytes(KEY_BYTES)
        key_id = self._next_key_id
        self._next_key_id += 1
        self._out_pending = (key_id, key)
        self._rotate_at = None
        self._write(SrtpKey(key_id, key))
        self.media.rekeys_sent += 1

    def _install_inbound(self, message: SrtpKey, now: float) -> None:
        if any(k.key_id >= message.key_id for k in self._inbound):
            self._breach(f"SRTP key {message.key_id} is not newer than the current one")
            return
        for old in self._inbound:
            if old.retire_at is None:
                old.retire_at = now + self.config.key_overlap
        self._inbound.append(_InboundKey(message.key_id, SrtpContext(
            AEAD_AES_128_GCM, self.random_bytes(KEY_BYTES), message.key)))
        self.media.rekeys_received += 1
        self._write(SrtpKeyAck(message.key_id))
        self._maybe_up()

    def _on_key_ack(self, message: SrtpKeyAck, now: float) -> None:
        pending = self._out_pending
        if pending is None or pending[0] != message.key_id:
            self._breach(f"acknowledgement of SRTP key {message.key_id} that was not offered")
            return
        self._out_pending = None
        # A fresh outbound context: the new key starts its own SRTP indexes.
        self._out = SrtpContext(AEAD_AES_128_GCM, pending[1], self.random_bytes(KEY_BYTES))
        self._rotate_at = now + self.config.key_lifetime
        self._maybe_up()

    def _maybe_up(self) -> None:
        if self.state == "verified" and self._out is not None and self._inbound:
            assert self.peer is not None
            self.state = "up"
            self._events.append(TrunkUp(self.peer.node, self.peer.region,
                                        self.peer.jurisdiction))


__all__ = [
    "Address",
    "MediaStats",
    "TrunkClosed",
    "TrunkConfig",
    "TrunkControl",
    "TrunkEvent",
    "TrunkRefused",
    "TrunkSession",
    "TrunkUp",
    "covers",
]
