"""The narrow interface between sessions and the media plane (the forwarder).

The session layer decides *what* flows (which published track goes to which subscriber under
which SSRC and payload type, negotiated in SDP); the forwarder decides *how* (per-packet
rewriting, RTCP translation, keyframe requests). Keeping the boundary to this protocol lets the
forwarder grow (NACK/RTX, simulcast layers, bandwidth estimation) without touching signaling,
and lets the session core be tested with any implementation.

Every call is synchronous and takes no Trio checkpoint: :meth:`MediaPlane.on_rtp` runs once per
packet inside the UDP driver's batch, and :meth:`MediaPlane.flush` once at the batch's end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from router.sdp import NegotiatedMedia, OutgoingTrack


class MediaSink(Protocol):
    """Where a forwarder sends a participant's packets (a ``PeerTransport``)."""

    def send_rtp(self, packet: bytes) -> bool: ...

    def send_rtcp(self, packet: bytes) -> bool: ...

    def send_rtp_batch(self, packets: list[bytes]) -> int:
        """Encrypt and queue several RTP packets in order; returns how many were queued."""
        ...


@dataclass(frozen=True, slots=True)
class PublishedTrack:
    """A track a participant publishes: the router's id for it and the publisher's section."""

    track_id: str
    participant: str
    media: NegotiatedMedia

    @property
    def kind(self) -> str:
        return self.media.kind


class MediaPlane(Protocol):
    """What the session core needs from a forwarder."""

    def add_track(self, track: PublishedTrack, publisher: MediaSink, now: float) -> None:
        """Start accepting the publisher's packets of ``track``."""

    def remove_track(self, track_id: str) -> None:
        """Forget a track and every subscription to it."""

    def subscribe(
        self,
        subscriber: str,
        track: OutgoingTrack,
        sink: MediaSink,
        now: float,
        extensions: Mapping[str, int] | None = None,
    ) -> None:
        """Forward ``track.track_id`` to ``sink`` rewritten to ``track`` (SSRC, payload type,
        header extensions to the ids in ``extensions``, URI -> id from the subscriber's answer);
        a video subscription asks the publisher for a keyframe."""

    def unsubscribe(self, subscriber: str, track_id: str) -> None:
        """Stop forwarding one track to one subscriber."""

    def remove_participant(self, participant: str) -> None:
        """Forget every track and subscription of ``participant``."""

    def on_rtp(self, publisher: str, packet: bytes, now: float) -> int:
        """Route one decrypted RTP packet; returns how many copies were queued.

        Copies may wait for :meth:`flush`, so one batch of input is encrypted and queued per
        subscriber in one call rather than per packet."""

    def flush(self) -> int:
        """Encrypt and queue what :meth:`on_rtp` left waiting; the driver calls it once per
        batch, before the socket is written. Returns how many packets were queued."""

    def on_rtcp(self, participant: str, packet: bytes, now: float, from_publisher: bool) -> None:
        """Handle one decrypted RTCP compound packet from the participant's publisher
        connection (``from_publisher``) or its subscriber connection."""

    def get_timer(self) -> float | None:
        """The forwarder's next deadline (reports, throttles), or None."""

    def handle_timer(self, now: float) -> None:
        """Run what is due."""

    def state_counts(self) -> dict[str, int]:
        """Sizes of internal tables, for leak checks after churn (all 0 when empty)."""


__all__ = ["MediaPlane", "MediaSink", "PublishedTrack"]
