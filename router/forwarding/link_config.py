"""Tunables of the loss-aware link logic (feedback to publishers, estimates for subscribers).

A separate dataclass from :class:`~router.forwarding.config.ForwarderConfig` so the link logic
can be switched off as a whole (``enabled=False``) for side-by-side cost measurements, and so
its many knobs do not crowd the forwarder's.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.forwarding.specs import ForwardingUsageError

__all__ = ["LinkConfig"]


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Loss-aware behaviour of the forwarder on every client leg."""

    enabled: bool = True
    """Master switch: TWCC/REMB to publishers, proactive upstream NACK, transport-wide
    sequence numbers and estimates for subscribers, and simulcast layer choice."""
    twcc_interval: float = 0.05
    """Seconds between transport-cc feedback packets to a publisher (the draft and libwebrtc
    use 50-100 ms; shorter reacts faster, longer costs fewer RTCP packets)."""
    remb_interval: float = 1.0
    """Seconds between REMB packets to a publisher that negotiated only goog-remb (a decrease
    is sent at once)."""
    publisher_max_bitrate: int = 4_000_000
    """Upper bound of the REMB the router sends a publisher, bits per second."""
    publisher_min_bitrate: int = 150_000
    """Lower bound of the REMB the router sends a publisher, bits per second."""
    subscriber_initial_bitrate: int = 1_000_000
    """Estimate a subscriber starts with before any feedback (bits per second)."""
    subscriber_max_bitrate: int = 20_000_000
    """Upper bound of a subscriber's estimate (bits per second)."""
    nack_max_retries: int = 6
    """Times one missing publisher packet is NACKed upstream at most."""
    nack_min_interval: float = 0.02
    """Retries of a NACK wait at least this long, and at least one measured RTT."""
    nack_max_age: float = 1.0
    """A missing publisher packet older than this is given up (no longer worth repairing)."""
    max_gap: int = 512
    """A jump of more packets than this is not NACKed at all (a restart or a long outage)."""
    rtx_share: float = 0.5
    """Retransmissions to one subscriber are limited to this share of the media bytes sent to
    it (plus a small burst allowance), so a NACK storm cannot amplify."""
    rtx_burst_bytes: int = 60_000
    """Retransmission credit a subscriber may bank (bytes) on top of the share."""

    def __post_init__(self) -> None:
        if self.twcc_interval <= 0 or self.remb_interval <= 0:
            raise ForwardingUsageError("feedback intervals must be positive")
        if not 0 < self.publisher_min_bitrate <= self.publisher_max_bitrate:
            raise ForwardingUsageError("publisher bitrate bounds must satisfy 0 < min <= max")
        if self.nack_max_retries < 1 or self.nack_min_interval <= 0 or self.nack_max_age <= 0:
            raise ForwardingUsageError("NACK retry settings must be positive")
        if self.max_gap < 1 or not 0 < self.rtx_share <= 4 or self.rtx_burst_bytes < 0:
            raise ForwardingUsageError("max_gap, rtx_share or rtx_burst_bytes out of range")
