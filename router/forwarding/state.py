"""The forwarder's state objects: who publishes what, who receives what.

Ownership is a tree so that removal is complete by construction (the issue's "no state left
behind"): a :class:`Participant` owns its published :class:`Track` objects and its
:class:`Downstream` subscriptions; a track owns its :class:`Layer` objects; a layer owns at
most one primary and one RTX :class:`Stream`. The only cross links are a stream's ``fanout``
(the downstreams currently fed by it) and a downstream's ``stream`` (its current source), which
attach/detach maintain as a pair.

Plain ``__slots__`` classes, not dataclasses: these are mutated on every packet and their
attribute access is the hot path.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from router.forwarding.cache import PacketCache
from router.forwarding.receive import ReceiveStats
from router.forwarding.specs import ABS_SEND_TIME, SubscriptionSpec, TrackSpec

if TYPE_CHECKING:
    from router.forwarding.downlink_loss import DownlinkReports
    from router.forwarding.gaps import GapTracker
    from router.forwarding.layers import LayerState
    from router.forwarding.publisher_feedback import TwccRecorder
    from router.forwarding.subscriber_links import SubscriberLink

__all__ = ["Downstream", "Layer", "Participant", "Stream", "Track", "next_epoch"]

_epochs = itertools.count(1)


def next_epoch() -> int:
    """A process-unique stream epoch (a new source or a restart; never reused)."""
    return next(_epochs)


class Participant:
    """A peer connection: publishes tracks, receives subscriptions, or both."""

    __slots__ = ("by_out_ssrc", "downstreams", "id", "link", "streams", "tracks", "twcc")

    def __init__(self, participant_id: str) -> None:
        self.id = participant_id
        self.twcc: TwccRecorder | None = None
        """Arrival recorder when the publisher negotiated transport-cc (read per packet)."""
        self.link: object | None = None
        """The link logic's per-connection state (:mod:`router.forwarding.links`)."""
        self.streams: dict[int, Stream] = {}
        """Incoming SSRC -> stream, over all tracks this participant publishes."""
        self.tracks: dict[str, Track] = {}
        self.downstreams: dict[str, Downstream] = {}
        """Track id -> this participant's subscription to it."""
        self.by_out_ssrc: dict[int, Downstream] = {}
        """Outgoing SSRC (primary and RTX) -> subscription, for the subscriber's RTCP."""


class Track:
    """A published track and its encodings."""

    __slots__ = ("codec_of_pt", "extensions", "layers", "pts", "publisher", "spec")

    def __init__(self, spec: TrackSpec, publisher: Participant) -> None:
        self.spec = spec
        self.publisher = publisher
        self.layers = [Layer(i, layer.rid) for i, layer in enumerate(spec.layers)]
        self.pts = frozenset(spec.codecs)
        self.codec_of_pt = dict(spec.codecs)
        self.extensions = dict(spec.extensions)

    @property
    def is_video(self) -> bool:
        """Video tracks get keyframe requests and a NACK cache."""
        return self.spec.kind == "video"

    def pts_keys(self) -> list[str]:
        """The codec keys of this track's payload types."""
        return list(self.codec_of_pt.values())


class Layer:
    """One encoding of a track: its current primary and RTX streams (None until bound)."""

    __slots__ = ("index", "rid", "rtx", "stream")

    def __init__(self, index: int, rid: str | None) -> None:
        self.index = index
        self.rid = rid
        self.stream: Stream | None = None
        self.rtx: Stream | None = None


class Stream:
    """One incoming SSRC. ``epoch`` is unique forwarder-wide and changes when the stream
    restarts, so a downstream whose ``epoch`` differs knows it must re-anchor."""

    __slots__ = (
        "cache",
        "clock_rate",
        "epoch",
        "fanout",
        "fir_seq",
        "gaps",
        "height",
        "is_rtx",
        "keyframe_last",
        "keyframe_pending",
        "layer",
        "nacked",
        "octets",
        "rate",
        "rate_mark",
        "receive",
        "ssrc",
        "track",
        "vp8",
        "waiting",
    )

    def __init__(
        self,
        ssrc: int,
        track: Track,
        layer: Layer,
        is_rtx: bool,
        receive: ReceiveStats,
        cache: PacketCache | None,
    ) -> None:
        self.ssrc = ssrc
        self.track = track
        self.layer = layer
        self.is_rtx = is_rtx
        self.epoch = next_epoch()
        self.clock_rate = track.spec.clock_rate
        self.receive = receive
        self.cache = cache
        self.fanout: list[Downstream] = []
        self.keyframe_last: float | None = None
        self.keyframe_pending = False
        self.fir_seq = 0
        self.octets = 0
        """Payload bytes received (layer rates for the simulcast choice)."""
        self.rate = 0.0
        """Smoothed receive rate in bits per second (updated by :meth:`measure`)."""
        self.rate_mark: tuple[float, int] | None = None
        self.height = 0
        """Frame height seen in this stream's last VP8 keyframe (0: not yet)."""
        self.vp8 = (
            len(track.layers) > 1 and not is_rtx and any("vp8" in k for k in track.pts_keys())
        )
        """Simulcast VP8: picture ids are read per packet and continued across switches."""
        self.waiting: list[Downstream] = []
        """Subscriptions switching to this stream at its next keyframe."""
        self.gaps: GapTracker | None = None
        """Proactive upstream NACK state (video streams of publishers that negotiated nack)."""
        self.nacked: dict[int, float] = {}
        """Extended seq -> when it was last NACKed upstream (suppresses duplicate NACKs)."""

    @property
    def last_packet(self) -> float:
        """Arrival time of the newest packet (-inf before the first)."""
        if self.receive.max_ext < 0:
            return float("-inf")
        return self.receive.last_arrival / self.clock_rate

    def measure(self, now: float) -> None:
        """Update :attr:`rate` from the bytes received since the last call."""
        mark = self.rate_mark
        self.rate_mark = (now, self.octets)
        if mark is None or now <= mark[0]:
            return
        sample = 8.0 * (self.octets - mark[1]) / (now - mark[0])
        self.rate = sample if not self.rate else 0.7 * self.rate + 0.3 * sample


class Downstream:
    """One subscription: the per-(subscriber, track) rewrite state.

    ``seq_offset``/``ts_offset`` map the current source onto the outgoing numbering; they are
    recomputed ("anchored") on the first packet after a source change so that the outgoing
    sequence continues at last + 1 and the timestamp at last + elapsed time.
    """

    __slots__ = (
        "ast_id",
        "b1_table",
        "downlink",
        "epoch",
        "ext_table",
        "first_seq",
        "last_fir_seq",
        "last_out_ext",
        "last_out_time",
        "last_out_ts",
        "layer",
        "min_ext",
        "nack_high",
        "octets",
        "packets",
        "pinned_layer",
        "remote_fraction_lost",
        "remote_jitter",
        "remote_lost",
        "rtx_seq",
        "seq_offset",
        "sim",
        "spec",
        "ssrc",
        "stream",
        "subscriber",
        "tail_key",
        "track",
        "ts_offset",
        "tw",
        "tw_hdr",
        "tw_id",
        "tw_key",
    )

    def __init__(
        self,
        spec: SubscriptionSpec,
        subscriber: Participant,
        initial_seq: int,
        initial_ts: int,
        initial_rtx_seq: int,
    ) -> None:
        self.spec = spec
        self.subscriber = subscriber.id
        self.ssrc = spec.ssrc
        self.track: Track | None = None
        self.stream: Stream | None = None
        self.layer: int | None = None
        self.pinned_layer: int | None = None
        """Layer forced by the (future) layer-choice logic; None means best available."""
        self.epoch = -1
        self.seq_offset = 0
        self.ts_offset = 0
        self.min_ext = 0
        self.last_out_ext = initial_seq - 1
        self.first_seq = initial_seq & 0xFFFF
        """The number of the first packet sent (where the subscriber's reports start)."""
        self.last_out_ts = initial_ts
        self.last_out_time: float | None = None
        self.packets = 0
        self.octets = 0
        self.rtx_seq = initial_rtx_seq
        self.b1_table: list[int] = []
        """Incoming second header byte (marker | PT) -> outgoing one, -1 to skip the packet."""
        self.ext_table: bytes | None = None
        self.ast_id = spec.extensions.get(ABS_SEND_TIME, 0)
        """The subscriber's abs-send-time id (0: not negotiated): the router writes its own."""
        self.tail_key: tuple[bytes | None, int] | None = None
        """``(ext_table, ast_id)``, or None when packets go out with the incoming tail as is;
        copies for subscribers with equal keys share one rewritten tail per packet."""
        self.sim: LayerState | None = None
        """Simulcast subscription state (pending switch, VP8 continuation), else None."""
        self.tw: SubscriberLink | None = None
        """The subscriber's link when it negotiated transport-cc: every copy is numbered."""
        self.tw_id = 0
        self.tw_hdr = 0
        """One-byte-form element header of the transport-cc element (id << 4 | 1)."""
        self.tw_key: tuple[bytes | None, int] = (None, 0)
        """Shares the prepared tail among subscribers with equal extension mappings."""
        self.last_fir_seq = -1
        self.remote_fraction_lost = 0
        self.remote_lost = 0
        self.nack_high = -1
        """Highest (extended) number the subscriber NACKed: lower ones are repeats."""
        self.downlink: DownlinkReports | None = None
        """The subscriber's receiver reports of this stream (downlink loss counters)."""
        self.remote_jitter = 0
