"""Counters and the state snapshot returned by ``Forwarder.stats()``.

Counters are plain int attributes (one ``+= 1`` on the hot path, no dict lookups); the snapshot
also reports the size of every state table so tests can check that churn leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Counters", "ForwarderStats"]


class Counters:
    """Monotonic event counters of one forwarder (class defaults, so ``+= 1`` just works)."""

    bye_received: int = 0
    keyframe_requests_received: int = 0
    keyframe_requests_sent: int = 0
    keyframe_requests_throttled: int = 0
    nack_received: int = 0
    nack_served: int = 0
    nack_upstream: int = 0
    remb_received: int = 0
    rr_received: int = 0
    rr_sent: int = 0
    rtcp_malformed: int = 0
    rtcp_received: int = 0
    rtcp_unknown_participant: int = 0
    rtcp_unknown_ssrc: int = 0
    rtcp_unhandled: int = 0
    rtp_bad_payload_type: int = 0
    rtp_duplicate: int = 0
    rtp_forwarded: int = 0
    rtp_malformed: int = 0
    rtp_out_of_range: int = 0
    rtp_padding_probe: int = 0
    rtp_received: int = 0
    rtp_restarts: int = 0
    rtp_too_old: int = 0
    rtp_unknown_participant: int = 0
    rtp_unknown_ssrc: int = 0
    sr_received: int = 0
    sr_sent: int = 0
    twcc_received: int = 0
    # Loss-aware link logic (router.forwarding.links).
    twcc_feedback_sent: int = 0
    remb_sent: int = 0
    nack_proactive: int = 0
    nack_proactive_seqs: int = 0
    nack_recovered: int = 0
    nack_given_up: int = 0
    nack_repeats_ignored: int = 0
    rtx_over_budget: int = 0
    twcc_unmatched: int = 0
    remb_absurd: int = 0
    bandwidth_feedback_ignored: int = 0
    # Subscribers' downlinks as they report them (router.forwarding.downlink_loss).
    downlink_expected: int = 0
    downlink_nacked: int = 0
    downlink_lost: int = 0
    probe_packets: int = 0

    def as_dict(self) -> dict[str, int]:
        """All counters by name."""
        return {name: int(getattr(self, name)) for name in _NAMES}


@dataclass(frozen=True, slots=True)
class ForwarderStats:
    """A snapshot: table sizes (for cleanup checks and load reports) plus the counters."""

    participants: int
    tracks: int
    streams: int
    subscriptions: int
    attached_subscriptions: int
    waiting_track_ids: int
    keyframe_pending: int
    nack_suppression_entries: int
    queued_rtp: int
    queued_rtcp: int
    counters: dict[str, int]

    @property
    def state_entries(self) -> int:
        """Everything held in memory about peers; 0 once every participant is removed."""
        return (
            self.participants
            + self.tracks
            + self.streams
            + self.subscriptions
            + self.attached_subscriptions
            + self.waiting_track_ids
            + self.keyframe_pending
            + self.nack_suppression_entries
        )


_NAMES = tuple(Counters.__annotations__)
