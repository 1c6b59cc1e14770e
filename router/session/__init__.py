"""Sessions of the SFU: rooms, participants, signaling state and negotiation, sans-IO.

:class:`SessionCore` is the one object the router process drives: WebSocket messages in,
messages and room notices out, transport events in (per packet), forwarder calls out. The Trio
shells are :mod:`router.signaling` (WebSocket endpoint) and :mod:`router.node` (process).
"""

from __future__ import annotations

from router.session.config import SessionConfig
from router.session.core import RoomNotice, SessionCore
from router.session.media import MediaPlane, MediaSink, PublishedTrack

__all__ = [
    "MediaPlane",
    "MediaSink",
    "PublishedTrack",
    "RoomNotice",
    "SessionConfig",
    "SessionCore",
]
