"""The loss-aware link logic the forwarder drives: one object, narrow hooks.

The forwarder calls in at a handful of points (a track published, a stream bound, a gap or a
repair seen on the packet path, bandwidth feedback received, its timer) and this module keeps
everything else: transport-cc / REMB feedback towards publishers, proactive upstream NACK with
RTT-bounded retries, and (see :mod:`router.forwarding.subscriber_links`) transport-wide
sequence numbers, estimates and layer choice towards subscribers. Output is RTCP appended to
the forwarder's queue; nothing here touches a socket or a clock.
"""

from __future__ import annotations

from router.forwarding.counters import Counters
from router.forwarding.gaps import GapTracker
from router.forwarding.link_config import LinkConfig
from router.forwarding.publisher_feedback import RembController, TwccRecorder
from router.forwarding.specs import TRANSPORT_WIDE_CC
from router.forwarding.state import Participant, Stream, Track
from router.rtp import GenericNack

__all__ = ["PublisherLinks"]


class PublisherLinks:
    """Feedback towards publishers: who gets TWCC, who gets REMB, and proactive NACKs."""

    def __init__(self, config: LinkConfig, reporter_ssrc: int, counters: Counters) -> None:
        self.config = config
        self.reporter_ssrc = reporter_ssrc
        self.counters = counters
        self._twcc: dict[Participant, TwccRecorder] = {}
        self._remb: dict[Participant, RembController] = {}
        self.gaps_pending: dict[GapTracker, None] = {}
        self._gap_streams: dict[GapTracker, Stream] = {}

    # -- hooks ----------------------------------------------------------------------------

    def on_track(self, track: Track, now: float) -> None:
        """A track was published: set up the feedback its publisher's estimator expects."""
        if not self.config.enabled:
            return
        part = track.publisher
        mode = track.spec.bandwidth_feedback
        ext_id = track.extensions.get(TRANSPORT_WIDE_CC, 0)
        if mode == "transport-cc" and ext_id and part not in self._twcc:
            recorder = TwccRecorder(ext_id)
            self._twcc[part] = recorder
            part.twcc = recorder
        elif mode == "remb" and part not in self._remb and part not in self._twcc:
            self._remb[part] = RembController(self.config, now)

    def on_stream(self, stream: Stream) -> None:
        """A stream was bound: video streams of NACK-capable publishers track their gaps."""
        recorder = self._twcc.get(stream.track.publisher)
        if recorder is not None and not stream.is_rtx and not recorder.media_ssrc:
            recorder.media_ssrc = stream.ssrc
        if not self.config.enabled or stream.is_rtx:
            return
        if stream.track.is_video and stream.track.spec.nack and stream.gaps is None:
            tracker = GapTracker(self.config, self.gaps_pending, self.counters)
            stream.gaps = tracker
            self._gap_streams[tracker] = stream

    def forget_stream(self, stream: Stream) -> None:
        """A stream ended: drop its pending NACKs."""
        tracker = stream.gaps
        if tracker is not None:
            tracker.forget()
            self._gap_streams.pop(tracker, None)
            stream.gaps = None

    def forget_participant(self, part: Participant) -> None:
        """A participant left: drop its feedback state."""
        self._twcc.pop(part, None)
        self._remb.pop(part, None)
        part.twcc = None

    # -- timer ----------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The next deadline (feedback interval, NACK retries), or None."""
        deadline: float | None = None
        interval = self.config.twcc_interval
        for recorder in self._twcc.values():
            if recorder.pending:
                due = recorder.since + interval
                if deadline is None or due < deadline:
                    deadline = due
        for controller in self._remb.values():
            if deadline is None or controller.deadline < deadline:
                deadline = controller.deadline
        for tracker in self.gaps_pending:
            retry = tracker.deadline()
            if retry is not None and (deadline is None or retry < deadline):
                deadline = retry
        return deadline

    def handle_timer(self, now: float, out: list[tuple[str, bytes]]) -> None:
        """Append due feedback and NACKs to ``out`` as ``(participant, RTCP)``."""
        ssrc = self.reporter_ssrc
        counters = self.counters
        horizon = now - self.config.twcc_interval
        for part, recorder in self._twcc.items():
            if recorder.pending and recorder.since <= horizon:
                for packet in recorder.feedback(ssrc):
                    counters.twcc_feedback_sent += 1
                    out.append((part.id, packet))
        for part, controller in self._remb.items():
            remb = controller.update(part, ssrc, now)
            if remb is not None:
                counters.remb_sent += 1
                out.append((part.id, remb))
        for tracker in list(self.gaps_pending):
            stream = self._gap_streams.get(tracker)
            if stream is None:
                tracker.forget()
                continue
            exts = tracker.due(now)
            if exts:
                nacked = stream.nacked
                for ext in exts:
                    nacked[ext] = now
                counters.nack_proactive += 1
                counters.nack_proactive_seqs += len(exts)
                nack = GenericNack.from_seqs(ssrc, stream.ssrc, exts).build()
                out.append((stream.track.publisher.id, nack))

    def stats(self) -> dict[str, float]:
        """Per-link figures for stats endpoints."""
        rtts = [t.rtt for t in self._gap_streams]
        return {
            "publishers_twcc": len(self._twcc),
            "publishers_remb": len(self._remb),
            "gap_trackers": len(self._gap_streams),
            "publisher_rtt_ms": 1000.0 * (sum(rtts) / len(rtts)) if rtts else 0.0,
        }
