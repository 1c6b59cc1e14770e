"""Rooms and participants: plain state, mutated only by :class:`router.session.core.SessionCore`.

Ownership is a tree so removal is complete by construction: a room owns its participants and
its published tracks; a participant owns its transports (at most one publisher and one
subscriber :class:`~router.transport.PeerTransport`), its subscriber negotiation and its chat
bucket. Nothing else holds a participant except the core's peer-owner index, which removal
clears first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from control.tokenbucket import TokenBucket
from router.sdp import LocalTransportParams, OutgoingTrack, SubscriberPlan
from router.session.media import PublishedTrack
from router.transport import PeerTransport


@dataclass(slots=True)
class SubscriberState:
    """The router-offered connection that carries every track the participant receives."""

    local: LocalTransportParams
    plan: SubscriberPlan = field(default_factory=SubscriberPlan)
    peer: PeerTransport | None = None
    #: track id -> what this subscriber gets for it (SSRCs fixed for the track's life).
    outgoing: dict[str, OutgoingTrack] = field(default_factory=dict)
    #: Track ids whose forwarding started (their section was accepted in an answer).
    subscribed: set[str] = field(default_factory=set)
    #: Track ids the subscriber rejected (port 0 in its answer): not offered again.
    declined: set[str] = field(default_factory=set)
    #: A change happened while an offer awaited its answer: offer again after it.
    dirty: bool = False


@dataclass(slots=True)
class Participant:
    """One joined participant (one signaling session)."""

    id: str
    name: str | None
    room: Room
    conn: int | None
    chat: TokenBucket
    subscriber: SubscriberState
    #: The publisher connection (the client offers, the router answers), once it published.
    publisher: PeerTransport | None = None
    publisher_local: LocalTransportParams | None = None
    publisher_remote_ufrag: str | None = None
    publish_version: int = 0
    #: publisher mid -> the track it carries.
    tracks: dict[str, PublishedTrack] = field(default_factory=dict)
    #: When the signaling connection went away (grace timer running), else None.
    disconnected_at: float | None = None

    def public(self) -> dict[str, object]:
        """What other participants learn: the id and display name (never an address)."""
        return {"id": self.id, "name": self.name}


@dataclass(slots=True)
class Room:
    """A room on this router: ``mode`` ``sfu`` (media forwarded) or ``p2p`` (relay only)."""

    name: str
    mode: str
    policy: str
    chat_enabled: bool
    participants: dict[str, Participant] = field(default_factory=dict)
    #: track id -> track, in publication order (subscribers get them in this order).
    tracks: dict[str, PublishedTrack] = field(default_factory=dict)
    #: Participants connected to other routers of the room (trunks): id -> router -> name.
    #: Keyed by router too, because during a move one id can briefly be present on two.
    remote: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def others(self, participant_id: str) -> list[Participant]:
        return [p for pid, p in self.participants.items() if pid != participant_id]

    def remote_public(self, participant_id: str) -> dict[str, object]:
        """A participant on another router as participants see it (like
        :meth:`Participant.public`)."""
        names = self.remote[participant_id]
        return {"id": participant_id, "name": next(iter(names.values()))}

    def everyone_else(self, participant_id: str) -> list[dict[str, object]]:
        """Who a participant sees in the room: local others, then those on other routers."""
        here = [p.public() for p in self.others(participant_id)]
        return here + [self.remote_public(pid) for pid in self.remote
                       if pid != participant_id and pid not in self.participants]


def track_info(track: PublishedTrack) -> dict[str, object]:
    """The public description of a track in signaling messages."""
    return {"id": track.track_id, "participant": track.participant, "kind": track.kind}


__all__ = ["Participant", "Room", "SubscriberState", "track_info"]
