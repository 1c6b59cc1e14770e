"""What trunks to other routers change in the session core's rooms (router/trunk/bridge.py).

A mixin of :class:`router.session.core.SessionCore`, kept apart so the core stays readable:
tracks and participants that live on another router appear in this router's rooms (and leave
them) through these methods, and the trunks read this router's own participants and tracks
back. Nothing here touches a transport; every change goes to local participants as signaling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from router.session.media import PublishedTrack
from router.session.room import Participant, Room, track_info


class RemoteRooms:
    """Rooms as seen from trunk peers (see the module docstring)."""

    if TYPE_CHECKING:
        rooms: dict[str, Room]
        track_epoch: int

        def _broadcast(
            self, room: Room, message: dict[str, Any], exclude: str | None = None
        ) -> None: ...

        def _renegotiate(self, p: Participant) -> None: ...

    def add_remote_track(self, room_name: str, track: PublishedTrack) -> bool:
        """Offer a track published on another router to this router's participants of the
        room; False when the room is not open here (or the track is already known)."""
        room = self.rooms.get(room_name)
        if room is None or room.mode != "sfu" or track.track_id in room.tracks:
            return False
        room.tracks[track.track_id] = track
        self.track_epoch += 1
        self._broadcast(room, {"type": "track_published", "track": track_info(track)})
        for p in room.participants.values():
            self._renegotiate(p)
        return True

    def remove_remote_track(self, room_name: str, track_id: str) -> bool:
        room = self.rooms.get(room_name)
        if room is None or track_id not in room.tracks:
            return False
        if room.tracks[track_id].participant in room.participants:
            return False  # a local track: only its publisher removes it
        track = room.tracks.pop(track_id)
        self.track_epoch += 1
        self._broadcast(room, {"type": "track_unpublished", "track": track_info(track)})
        for p in room.participants.values():
            self._renegotiate(p)
        return True

    def add_remote_participant(self, room_name: str, router: str, participant: str,
                               name: str | None) -> bool:
        """A participant of the room connected to ``router`` (a trunk peer): this router's
        participants see it join. False when the room is not open here or nothing changed."""
        room = self.rooms.get(room_name)
        if room is None:
            return False
        names = room.remote.setdefault(participant, {})
        if names.get(router, ...) == name:
            return False
        first = not names
        names[router] = name
        if first and participant not in room.participants:
            self._broadcast(room, {"type": "participant_joined",
                                   "participant": room.remote_public(participant)})
        return True

    def remove_remote_participant(self, room_name: str, router: str, participant: str) -> bool:
        """``participant`` is no longer on ``router`` (withdrawn, or the trunk ended)."""
        room = self.rooms.get(room_name)
        names = room.remote.get(participant) if room is not None else None
        if room is None or names is None or names.pop(router, ...) is ...:
            return False
        if not names:
            del room.remote[participant]
            if participant not in room.participants:
                self._broadcast(room, {"type": "participant_left",
                                       "participant": {"id": participant, "name": None},
                                       "reason": "disconnected"})
        return True

    def local_participants(self, room_name: str) -> list[tuple[str, str | None]]:
        """``(id, name)`` of this router's own participants of the room."""
        room = self.rooms.get(room_name)
        return [] if room is None else [(p.id, p.name) for p in room.participants.values()]

    def local_tracks(self, room_name: str) -> list[PublishedTrack]:
        """Tracks published by this router's own participants of the room."""
        room = self.rooms.get(room_name)
        if room is None:
            return []
        return [t for t in room.tracks.values() if t.participant in room.participants]


__all__ = ["RemoteRooms"]
