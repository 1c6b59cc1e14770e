"""Limits and timings of the session layer (signaling, rooms, chat), one documented dataclass.

Defaults are what an operator of LiveKit or Jitsi would expect for a public deployment; tests
shorten the timings through the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Tunables of :class:`router.session.core.SessionCore`."""

    #: Largest signaling message accepted, in bytes of its UTF-8 text. A Chromium offer with
    #: simulcast and every codec is about 12 kB; larger messages get ``too_large``.
    max_message_bytes: int = 65536
    #: Sustained signaling messages per second per connection (bucket refill rate).
    message_rate: float = 20.0
    #: Signaling messages a connection may send at once before ``rate_limited``.
    message_burst: float = 60.0
    #: Seconds a new connection has to present a valid join token before it is closed.
    join_timeout: float = 10.0
    #: Seconds a participant whose signaling connection vanished keeps its media session, so a
    #: brief network change does not tear down a meeting; then it is removed completely.
    reconnect_grace: float = 10.0
    #: Participants per SFU room (``room_full`` beyond). p2p rooms always hold two.
    max_room_participants: int = 100
    #: Participants on this router (``router_full`` beyond); also the capacity registered.
    max_participants: int = 1000
    #: Chat messages per second per participant (refill rate).
    chat_rate: float = 2.0
    #: Chat messages a participant may send at once before ``chat_rate_limited``.
    chat_burst: float = 10.0
    #: Longest chat text in characters.
    max_chat_chars: int = 2000
    #: Whether new rooms allow chat unless their first participant asks otherwise.
    chat_default: bool = True
    #: Tracks one participant may publish.
    max_tracks_per_participant: int = 8


__all__ = ["SessionConfig"]
