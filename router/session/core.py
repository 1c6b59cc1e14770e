"""The router's session core: signaling connections, rooms, participants, sans-IO.

Inputs: :meth:`SessionCore.open_connection`, :meth:`receive_message` (one WebSocket text
message), :meth:`connection_lost`, :meth:`on_rtp` (decrypted RTP, handed over by the UDP mux as
it is read; synchronous and cheap, it runs per packet), :meth:`on_transport_event` (every other
``(peer, event)`` the mux emits), :meth:`handle_timer`, and the trunks' calls
(router.session.remote_rooms). Outputs:
:meth:`messages_to_send` (``(connection, text)``), :meth:`closes_to_send` (``(connection, code,
reason)``), :meth:`room_notices` (rooms opened/closed, for etcd placement) and :meth:`get_timer`.
Every entry point takes ``now`` (the driver's monotonic clock, the same one the mux sees); joins
also take ``unix_now`` for token expiry. The Starlette app and the node are thin shells around it.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from control.schema import KeySet, SecretKey
from control.tokenbucket import TokenBucket
from control.tokens import Expired, TokenError, WrongRouter, verify_token
from router.sdp import Candidate
from router.session import messages as m
from router.session.config import SessionConfig
from router.session.media import MediaPlane
from router.session.negotiation import NegotiationError, Negotiator
from router.session.remote_rooms import RemoteRooms
from router.session.room import Participant, Room, track_info
from router.session.stats import SessionStats
from router.transport import (
    DtlsCertificate,
    PeerTransport,
    RtcpReceived,
    RtpReceived,
    TransportClosed,
    TransportEvent,
    TransportMux,
)
from router.transport.base import BaseTransport

KeySource = Callable[[], KeySet | Mapping[str, SecretKey] | None]


@dataclass(slots=True)
class Connection:
    """One signaling connection; ``participant`` once its join succeeded."""

    id: int
    bucket: TokenBucket
    opened_at: float
    participant: Participant | None = None
    closed: bool = False
    last_rate_error: float = -1e9


@dataclass(frozen=True, slots=True)
class RoomNotice:
    """A room appeared on or left this router (the node updates etcd placement)."""

    room: str
    opened: bool
    policy: str
    mode: str = "sfu"


@dataclass
class SessionCore(RemoteRooms):
    """All signaling and session state of one router process (what trunks to other routers
    change in its rooms is in :class:`router.session.remote_rooms.RemoteRooms`)."""

    node_id: str
    keys: KeySource
    mux: TransportMux
    media: MediaPlane
    certificate: DtlsCertificate
    candidates: tuple[Candidate, ...]
    config: SessionConfig = field(default_factory=SessionConfig)
    rng: random.Random = field(default_factory=random.Random)
    draining: bool = False
    stats: SessionStats = field(default_factory=SessionStats)
    rooms: dict[str, Room] = field(default_factory=dict)
    connections: dict[int, Connection] = field(default_factory=dict)
    negotiator: Negotiator = field(init=False)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _outbox: list[tuple[int, str]] = field(default_factory=list)
    _closes: list[tuple[int, int, str]] = field(default_factory=list)
    _notices: list[RoomNotice] = field(default_factory=list)
    _timers: list[tuple[float, int, str, object]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    track_epoch: int = 0
    """Changes whenever a room's tracks change (trunks re-announce when it moves)."""
    chat_out: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    """Chat for participants on other routers: ``(room, participant, name, text)``, taken
    by the trunks (router/trunk/bridge.py) and never kept longer."""

    def __post_init__(self) -> None:
        self.negotiator = Negotiator(
            self.mux, self.media, self.certificate, self.candidates, self.rng,
            self.config.max_tracks_per_participant, self.stats.absorb_peer,
        )  # fmt: skip
        # Decrypted RTP comes straight to on_rtp, not through the mux's event queue.
        self.mux.set_rtp_handler(self.on_rtp)
        self._handlers: dict[str, Callable[[Connection, Participant, m.ClientMessage, float],
                                           None]] = {
            "publish": self._on_publish,
            "answer": self._on_answer,
            "chat": self._on_chat,
            "relay": self._on_relay,
            "leave": self._on_leave,
            "video_size": self._on_video_size,
            "link_stats": self._on_link_stats,
        }

    # -- counts ---------------------------------------------------------------------------------

    @property
    def participant_count(self) -> int:
        return sum(len(r.participants) for r in self.rooms.values())

    def state_counts(self) -> dict[str, int]:
        """Every table's size, for leak checks: all zero once everyone left."""
        return {
            "connections": len(self.connections),
            "rooms": len(self.rooms),
            "participants": self.participant_count,
            "peers": self.mux.peer_count,
            "peer_owners": len(self.negotiator.owners),
            "timers": len(self._timers),
            **{f"media_{k}": v for k, v in self.media.state_counts().items()},
        }

    # -- connections ----------------------------------------------------------------------------

    def open_connection(self, now: float) -> int:
        """A new signaling connection; it must send ``join`` within ``join_timeout``."""
        conn = Connection(next(self._ids), TokenBucket(
            self.config.message_rate, self.config.message_burst, now), now)
        self.connections[conn.id] = conn
        self._schedule(now + self.config.join_timeout, "join", conn)
        return conn.id

    def connection_lost(self, conn_id: int, now: float) -> None:
        """The WebSocket went away; a joined participant keeps its media for the grace time."""
        conn = self.connections.pop(conn_id, None)
        if conn is None:
            return
        conn.closed = True
        p = conn.participant
        if p is not None and p.conn == conn_id:
            p.conn = None
            p.disconnected_at = now
            self._schedule(now + self.config.reconnect_grace, "grace", p)

    def receive_message(self, conn_id: int, data: str | bytes, now: float, unix_now: float) -> None:
        """Handle one client message; problems become ``error`` messages, never exceptions."""
        conn = self.connections.get(conn_id)
        if conn is None or conn.closed:
            return
        if not conn.bucket.take(now):
            self.stats.count_error(m.E_RATE_LIMITED)
            if now - conn.last_rate_error >= 1.0:
                conn.last_rate_error = now
                self._send(conn_id, m.error(m.E_RATE_LIMITED, "too many messages; slow down"))
            return
        try:
            msg = m.parse_client_message(data, self.config.max_message_bytes)
        except m.MessageError as exc:
            self._error(conn, exc.code, exc.message)
            return
        self.stats.count_message(msg.type)
        if msg.type == "ping":
            pong: dict[str, Any] = {"type": "pong"}
            if "id" in msg.fields:
                pong["id"] = msg.fields["id"]
            self._send(conn_id, pong)
            return
        if msg.type == "join":
            if conn.participant is not None:
                self._error(conn, m.E_OUT_OF_ORDER, "already joined", "join")
                return
            self._on_join(conn, msg, now, unix_now)
            return
        p = conn.participant
        if p is None:
            self._error(conn, m.E_OUT_OF_ORDER, f"{msg.type} before join: send the token first",
                        msg.type)
            return
        self._handlers[msg.type](conn, p, msg, now)

    # -- outputs --------------------------------------------------------------------------------

    def messages_to_send(self) -> list[tuple[int, str]]:
        out, self._outbox = self._outbox, []
        return out

    def closes_to_send(self) -> list[tuple[int, int, str]]:
        out, self._closes = self._closes, []
        return out

    def room_notices(self) -> list[RoomNotice]:
        out, self._notices = self._notices, []
        return out

    def flush_media(self) -> int:
        """End of a UDP batch: let the media plane encrypt and queue what it routed."""
        return self.media.flush()

    def has_output(self) -> bool:
        return bool(self._outbox or self._closes or self._notices)

    # -- timers ---------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        timers = self._timers
        while timers and not self._timer_live(timers[0]):
            heapq.heappop(timers)
        best = timers[0][0] if timers else None
        media = self.media.get_timer()
        if media is not None and (best is None or media < best):
            best = media
        return best

    def handle_timer(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            entry = heapq.heappop(timers)
            if not self._timer_live(entry):
                continue
            _, _, kind, target = entry
            if kind == "join":
                assert isinstance(target, Connection)
                self._close(target, m.CLOSE_JOIN_TIMEOUT, "no valid join in time")
                self.connections.pop(target.id, None)
            elif kind == "grace":
                assert isinstance(target, Participant)
                self._remove(target, "signaling lost", now)
        self.media.handle_timer(now)

    def _timer_live(self, entry: tuple[float, int, str, object]) -> bool:
        _, _, kind, target = entry
        if kind == "join":
            return isinstance(target, Connection) and target.id in self.connections \
                and target.participant is None and not target.closed
        assert isinstance(target, Participant)
        return target.conn is None and target.room.participants.get(target.id) is target

    def _schedule(self, deadline: float, kind: str, target: object) -> None:
        heapq.heappush(self._timers, (deadline, next(self._seq), kind, target))

    # -- transport events (per packet: keep it lean) --------------------------------------------

    def on_rtp(self, peer: BaseTransport, packet: bytes, now: float) -> None:
        """A decrypted RTP packet from ``peer`` (the mux calls this directly, see
        ``TransportMux.set_rtp_handler``): routed now, encrypted at the batch's end."""
        owner = self.negotiator.owners.get(peer)  # type: ignore[call-overload]
        if owner is None:
            return
        stats = self.stats
        stats.packets_in += 1
        stats.bytes_in += len(packet)
        if owner[1]:
            copies = self.media.on_rtp(owner[0].id, packet, now)
            stats.packets_out += copies
            stats.bytes_out += copies * len(packet)

    def on_transport_event(self, peer: PeerTransport, event: TransportEvent, now: float) -> None:
        owner = self.negotiator.owners.get(peer)
        if owner is None:
            return
        cls = type(event)
        stats = self.stats
        if cls is RtpReceived:
            self.on_rtp(peer, event.packet, now)  # type: ignore[attr-defined]
            return
        if cls is RtcpReceived:
            stats.rtcp_in += 1
            self.media.on_rtcp(owner[0].id, event.packet, now, owner[1])  # type: ignore[attr-defined]
            return
        if cls is TransportClosed:
            reason = event.reason  # type: ignore[attr-defined]
            stats.count_transport_closed(peer, reason)
            p = owner[0]
            if p.conn is not None:
                self._send(p.conn, m.error("transport_closed", f"media transport closed: {reason}"))
                conn = self.connections.get(p.conn)
                if conn is not None:
                    self._close(conn, m.CLOSE_TRANSPORT_FAILED, "media transport closed")
            self._remove(p, reason, now)
            return
        p = owner[0]
        if p.conn is not None:
            role = "publisher" if owner[1] else "subscriber"
            state = cls.__name__.removesuffix("Connected").lower()
            if cls.__name__.endswith("Connected"):
                self._send(p.conn, {"type": "transport", "connection": role,
                                    "state": f"{state}_connected"})

    # -- join / leave ---------------------------------------------------------------------------

    def _on_join(self, conn: Connection, msg: m.ClientMessage, now: float, unix_now: float) -> None:
        keys = self.keys()
        try:
            if keys is None:
                raise TokenError("the router has no join-token keys yet")
            claims = verify_token(msg.fields["token"], keys, self.node_id, unix_now)
        except Expired:
            self._refuse(conn, m.E_TOKEN_EXPIRED, "the join token has expired; join again")
            return
        except WrongRouter:
            self._refuse(conn, m.E_WRONG_ROUTER, "the join token is for another router")
            return
        except TokenError as exc:
            self._refuse(conn, m.E_TOKEN_INVALID, f"join token refused: {exc}")
            return
        room = self.rooms.get(claims.room)
        if self.draining and room is None:
            # A draining router takes no new rooms but keeps its current ones (ARCHITECTURE §5):
            # their placement still names it, so the front door keeps sending a reconnecting
            # participant here, and refusing would make that participant loop.
            self._refuse(conn, m.E_DRAINING, "this router is draining; join again")
            return
        if room is not None and room.mode != claims.mode:
            self._refuse(conn, m.E_MODE_MISMATCH, f"room is {room.mode}, token says {claims.mode}")
            return
        if room is not None and claims.participant in room.participants:
            old = room.participants[claims.participant]
            if old.conn is not None and old.conn in self.connections:
                self._close(self.connections[old.conn], m.CLOSE_REPLACED, "joined again elsewhere")
                self.connections.pop(old.conn, None)
            self._remove(old, "replaced by a new join", now)
            room = self.rooms.get(claims.room)
        limit = 2 if claims.mode == "p2p" else self.config.max_room_participants
        if room is not None and len(room.participants) >= limit:
            self._refuse(conn, m.E_ROOM_FULL, f"the room is full ({limit} participants)")
            return
        if self.participant_count >= self.config.max_participants:
            self._refuse(conn, m.E_ROUTER_FULL, "this router is full; join again")
            return
        if room is None:
            chat = msg.fields.get("room_options", {}).get("chat", self.config.chat_default)
            room = Room(claims.room, claims.mode, claims.policy, chat is not False)
            self.rooms[room.name] = room
            self.track_epoch += 1
            self._notices.append(RoomNotice(room.name, True, room.policy, room.mode))
        p = Participant(
            claims.participant, claims.name, room, conn.id,
            TokenBucket(self.config.chat_rate, self.config.chat_burst, now),
            self.negotiator.new_subscriber_state(),
        )  # fmt: skip
        conn.participant = p
        room.participants[p.id] = p
        self.stats.count_join("ok")
        self._send(conn.id, {
            "type": "joined", "version": m.PROTOCOL_VERSION, "participant": p.id,
            "room": room.name, "mode": room.mode, "chat": room.chat_enabled,
            "participants": room.everyone_else(p.id),
            "tracks": [track_info(t) for t in room.tracks.values()],
            "limits": {"max_message_bytes": self.config.max_message_bytes,
                       "max_chat_chars": self.config.max_chat_chars},
        })  # fmt: skip
        self._broadcast(room, {"type": "participant_joined", "participant": p.public()}, p.id)
        self._renegotiate(p)

    def _on_leave(self, conn: Connection, p: Participant, msg: m.ClientMessage, now: float) -> None:
        self._remove(p, "left", now)
        self._send(conn.id, {"type": "bye", "reason": "left"})
        self._close(conn, m.CLOSE_NORMAL, "left")
        self.connections.pop(conn.id, None)

    def _remove(self, p: Participant, reason: str, now: float) -> None:
        """Remove ``p`` completely: transports, forwarder state, tracks, room membership."""
        room = p.room
        if room.participants.get(p.id) is not p:
            return
        del room.participants[p.id]
        self.negotiator.close(p, reason)
        gone = [t for t in room.tracks.values() if t.participant == p.id]
        self.track_epoch += 1
        for track in gone:
            del room.tracks[track.track_id]
            self._broadcast(room, {"type": "track_unpublished", "track": track_info(track)})
        if p.id in room.remote:
            # Still in the room through another router (it moved there): nobody left.
            self._broadcast(room, {"type": "participant_joined",
                                   "participant": room.remote_public(p.id)})
        else:
            self._broadcast(room, {"type": "participant_left", "participant": p.public(),
                                   "reason": "left" if reason == "left" else "disconnected"})
        if p.conn is not None:
            conn = self.connections.get(p.conn)
            if conn is not None:
                conn.participant = None
        p.conn = None
        if gone:
            for other in room.participants.values():
                self._renegotiate(other)
        if not room.participants:
            del self.rooms[room.name]
            self._notices.append(RoomNotice(room.name, False, room.policy, room.mode))

    # -- media signaling ------------------------------------------------------------------------

    def _on_publish(self, conn: Connection, p: Participant, msg: m.ClientMessage,
                    now: float) -> None:
        if p.room.mode != "sfu":
            self._error(conn, m.E_NOT_ALLOWED, "publish is for sfu rooms; p2p rooms use relay",
                        "publish")
            return
        try:
            result = self.negotiator.publish(p, msg.fields["sdp"], now)
        except NegotiationError as exc:
            self._error(conn, m.E_BAD_SDP, str(exc), "publish")
            return
        room = p.room
        if result.added or result.removed:
            self.track_epoch += 1
        for track in result.removed:
            room.tracks.pop(track.track_id, None)
            self._broadcast(room, {"type": "track_unpublished", "track": track_info(track)})
        for track in result.added:
            room.tracks[track.track_id] = track
            self._broadcast(room, {"type": "track_published", "track": track_info(track)}, p.id)
        self._send(conn.id, {
            "type": "answer", "sdp": result.answer,
            "tracks": {t.media.mid: t.track_id for t in p.tracks.values()},
            "rejected": [{"mid": mid, "reason": why} for mid, why in result.rejected],
        })  # fmt: skip
        if result.added or result.removed:
            for other in room.others(p.id):
                self._renegotiate(other)

    def _on_answer(self, conn: Connection, p: Participant, msg: m.ClientMessage,
                   now: float) -> None:
        if p.room.mode != "sfu":
            self._error(conn, m.E_NOT_ALLOWED, "answer is for sfu rooms; p2p rooms use relay",
                        "answer")
            return
        if not p.subscriber.plan.awaiting_answer:
            self._error(conn, m.E_OUT_OF_ORDER, "no router offer is awaiting an answer", "answer")
            return
        try:
            again = self.negotiator.apply_answer(p, msg.fields["sdp"], now)
        except NegotiationError as exc:
            self._error(conn, m.E_BAD_SDP, str(exc), "answer")
            return
        if again:
            self._renegotiate(p)

    def _renegotiate(self, p: Participant) -> None:
        if p.room.mode != "sfu" or p.conn is None:
            if p.room.mode == "sfu" and p.conn is None:
                p.subscriber.dirty = True
            return
        tracks = [t for t in p.room.tracks.values() if t.participant != p.id]
        offer = self.negotiator.offer(p, tracks)
        if offer is not None:
            self._send(p.conn, offer)

    # -- chat and p2p relay ---------------------------------------------------------------------

    def _on_chat(self, conn: Connection, p: Participant, msg: m.ClientMessage, now: float) -> None:
        if not p.room.chat_enabled:
            self._error(conn, m.E_CHAT_DISABLED, "chat is disabled in this room", "chat")
            return
        text: str = msg.fields["text"]
        if not text.strip() or len(text) > self.config.max_chat_chars:
            self._error(conn, m.E_MALFORMED,
                        f"chat text must be 1-{self.config.max_chat_chars} characters", "chat")
            return
        if not p.chat.take(now):
            self._error(conn, m.E_CHAT_RATE_LIMITED, "too many chat messages; slow down", "chat")
            return
        # Delivered from memory to the current participants only; never stored or logged.
        self.stats.chat_relayed += 1
        self._broadcast(p.room, {"type": "chat", "from": p.public(), "text": text}, p.id)
        if p.room.remote:
            self.chat_out.append((p.room.name, p.id, p.name, text))

    def deliver_remote_chat(self, room_name: str, participant: str, name: str | None,
                            text: str) -> bool:
        """Chat from a participant on another router (its router applied the limits)."""
        room = self.rooms.get(room_name)
        if room is None or not room.chat_enabled or participant in room.participants:
            return False
        if not text.strip() or len(text) > self.config.max_chat_chars:
            return False
        self.stats.chat_relayed += 1
        self._broadcast(room, {"type": "chat", "from": {"id": participant, "name": name},
                               "text": text})
        return True

    def _on_video_size(self, conn: Connection, p: Participant, msg: m.ClientMessage,
                       now: float) -> None:
        """The client shows a track at most ``height`` pixels high: the router then sends the
        smallest simulcast layer that covers it (0 lifts the limit)."""
        track_id, height = msg.fields["track"], msg.fields["height"]
        if isinstance(height, bool) or not 0 <= height <= 16384:
            self._error(conn, m.E_MALFORMED, "height must be an integer 0..16384", "video_size")
            return
        setter = getattr(self.media, "set_video_size", None)
        if setter is None or not setter(p.id, track_id, height, now):
            self._error(conn, m.E_UNKNOWN_TRACK, f"not subscribed to track {track_id!r}",
                        "video_size")

    def _on_link_stats(self, conn: Connection, p: Participant, msg: m.ClientMessage,
                       now: float) -> None:
        """The router's view of this client's downlink: estimate, RTT, loss, layers."""
        getter = getattr(self.media, "link_report", None)
        report = getter(p.id) if getter is not None else None
        self._send(conn.id, {"type": "link_stats", **(report or {})})

    def _on_relay(self, conn: Connection, p: Participant, msg: m.ClientMessage,
                  now: float) -> None:
        if p.room.mode != "p2p":
            self._error(conn, m.E_NOT_ALLOWED, "relay is for p2p rooms", "relay")
            return
        try:
            m.check_relay_payload(msg.fields["payload"])
        except m.MessageError as exc:
            self._error(conn, exc.code, exc.message, "relay")
            return
        others = p.room.others(p.id)
        target = msg.fields.get("to")
        peer = next((o for o in others if target is None or o.id == target), None)
        if peer is None or peer.conn is None:
            self._error(conn, m.E_NO_PEER, "no other participant to relay to", "relay")
            return
        self.stats.relayed += 1
        self._send(peer.conn, {"type": "relay", "from": p.id, "payload": msg.fields["payload"]})

    # -- output helpers -------------------------------------------------------------------------

    def _send(self, conn_id: int, message: dict[str, Any]) -> None:
        self._outbox.append((conn_id, m.encode(message)))

    def _broadcast(self, room: Room, message: dict[str, Any], exclude: str | None = None) -> None:
        text = m.encode(message)
        for pid, other in room.participants.items():
            if pid != exclude and other.conn is not None:
                self._outbox.append((other.conn, text))

    def _error(
        self, conn: Connection, code: str, text: str, in_reply_to: str | None = None
    ) -> None:
        self.stats.count_error(code)
        self._send(conn.id, m.error(code, text, in_reply_to))

    def _refuse(self, conn: Connection, code: str, text: str) -> None:
        """A fatal join error: tell the client why, then close the connection."""
        self.stats.count_join(code)
        self._error(conn, code, text, "join")
        self._close(conn, m.CLOSE_CODES[code], code)
        self.connections.pop(conn.id, None)

    def _close(self, conn: Connection, code: int, reason: str) -> None:
        if not conn.closed:
            conn.closed = True
            self._closes.append((conn.id, code, reason))

    def evict_room(self, name: str, code: str, text: str, now: float) -> int:
        """Send everyone in room ``name`` away with a fatal ``code`` (error, then close) and
        remove them; returns how many went. Used when etcd says the room lives on another
        router: its participants must rejoin through the front door to reach it."""
        room = self.rooms.get(name)
        if room is None:
            return 0
        gone = list(room.participants.values())
        for p in gone:
            conn = self.connections.get(p.conn) if p.conn is not None else None
            self._remove(p, text, now)
            if conn is not None:
                self._error(conn, code, text)
                self._close(conn, m.CLOSE_CODES[code], code)
                self.connections.pop(conn.id, None)
        return len(gone)

    def shutdown(self, now: float, reason: str = "router shutting down") -> None:
        """Remove everyone (drain deadline or stop): bye, close, full cleanup."""
        for conn in list(self.connections.values()):
            self._send(conn.id, {"type": "bye", "reason": "shutdown"})
            self._close(conn, m.CLOSE_SHUTDOWN, reason)
        for room in list(self.rooms.values()):
            for p in list(room.participants.values()):
                self._remove(p, reason, now)
        self.connections.clear()


__all__ = ["Connection", "RoomNotice", "SessionCore"]
