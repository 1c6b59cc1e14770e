"""Forwarder configuration (one dataclass, a docstring per field)."""

from __future__ import annotations

from dataclasses import dataclass, field

from router.forwarding.link_config import LinkConfig
from router.forwarding.specs import ForwardingUsageError

__all__ = ["ForwarderConfig"]


@dataclass(frozen=True, slots=True)
class ForwarderConfig:
    """Tunables of :class:`~router.forwarding.forwarder.Forwarder`."""

    reporter_ssrc: int = 0x52474F31
    """SSRC the router reports and sends feedback as (RR, PLI, FIR, NACK sender SSRC)."""
    cname: str | None = "regio"
    """CNAME put in an SDES after each receiver report (None: reduced-size RTCP, RFC 5506)."""
    report_interval: float = 1.0
    """Mean receiver-report interval in seconds; each one is randomised x0.5..1.5 (RFC 3550
    §6.2), like libwebrtc's 1 s video interval. Publishers use RRs for loss-based rate control
    and libwebrtc stops sending MID/RID once one arrives."""
    keyframe_min_interval: float = 0.5
    """At most one keyframe request per source stream per this many seconds; requests inside
    the window are merged into one sent when it ends (so a late joiner still gets a keyframe)."""
    cache_size: int = 1024
    """Packets kept per video stream for NACK (a power of two; 0 disables the cache)."""
    reorder_window: int = 256
    """How far back (in packets) a late packet is still forwarded; also the duplicate filter.
    RTX repairs arrive about an RTT late: 256 packets is ~0.9 s of 2.5 Mbit/s video. Wider
    windows cost more per packet (the filter is one Python int shifted per packet)."""
    max_dropout: int = 3000
    """A forward jump larger than this is treated as a possible restart (RFC 3550 A.1)."""
    max_nack_per_packet: int = 64
    """Sequence numbers served per incoming NACK at most (bounds retransmission work)."""
    upstream_nack_suppress: float = 0.1
    """Seconds during which the same missing packet is not NACKed upstream again (several
    subscribers usually miss the same packet)."""
    link: LinkConfig = field(default_factory=LinkConfig)
    """Loss-aware link logic (bandwidth feedback, estimates, layer choice, proactive NACK)."""

    def __post_init__(self) -> None:
        if self.cache_size and self.cache_size & (self.cache_size - 1):
            raise ForwardingUsageError(f"cache_size {self.cache_size} is not a power of two")
        if self.reorder_window < 1 or self.max_dropout < 1:
            raise ForwardingUsageError("reorder_window and max_dropout must be positive")
        if self.report_interval <= 0 or self.keyframe_min_interval < 0:
            raise ForwardingUsageError("report_interval must be positive")
        if not 0 <= self.reporter_ssrc <= 0xFFFFFFFF:
            raise ForwardingUsageError(f"reporter_ssrc {self.reporter_ssrc} out of range")
