"""Prometheus metrics of a router, collected at scrape time from the cores' plain counters.

Nothing on the packet path calls the Prometheus client: counters are integers in
:class:`~router.session.stats.SessionStats`, the mux and the transports, and this collector
reads them when ``/metrics`` is scraped. Labels are bounded enums (message type, error code,
drop reason); no label ever carries an address, a room name or a participant id.

``regio_router_forwarding_latency_seconds`` is packet-weighted: for each UDP batch, the time
from reading its first datagram to the end of routing and re-encrypting the batch, counted once
per forwarded packet (an upper bound on each packet's time in the router before ``sendto``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from router.session.stats import (
    SRTP_FAILURE_KINDS,
    STUN_REFUSAL_KINDS,
    srtp_failures,
    stun_refusals,
)

if TYPE_CHECKING:
    from router.signaling.hub import Hub


class RouterCollector:
    """Reads a :class:`Hub` (and through it the core and the mux)."""

    def __init__(self, hub: Hub, region: str) -> None:
        self.hub = hub
        self.region = region

    def collect(self) -> Iterable[Metric]:
        core = self.hub.core
        s = core.stats
        counts = core.state_counts()
        labels = ["region"]
        r = [self.region]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=labels)
            g.add_metric(r, value)
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=labels)
            c.add_metric(r, value)
            return c

        yield gauge("regio_router_sessions", "Joined participants", counts["participants"])
        yield gauge("regio_router_rooms", "Rooms on this router", counts["rooms"])
        yield gauge("regio_router_connections", "Open signaling connections",
                    counts["connections"])
        yield gauge("regio_router_peers", "Media transports (ICE/DTLS/SRTP peers)", counts["peers"])
        yield gauge("regio_router_draining", "1 while draining", 1 if core.draining else 0)
        yield counter("regio_router_packets_in", "Authenticated RTP packets received", s.packets_in)
        yield counter("regio_router_bytes_in", "Decrypted RTP bytes received", s.bytes_in)
        yield counter("regio_router_packets_out", "RTP packets forwarded (per subscriber)",
                      s.packets_out)
        yield counter("regio_router_bytes_out", "RTP bytes forwarded before encryption",
                      s.bytes_out)
        yield counter("regio_router_rtcp_in", "Authenticated RTCP packets received", s.rtcp_in)
        yield counter("regio_router_dtls_failures", "DTLS handshakes or sessions that failed",
                      s.dtls_failures)
        yield counter("regio_router_stopped_sections_answered_inactive",
                      "Stopped subscriber m-sections answered a=inactive on a live port "
                      "(accepted as rejected; aiortc does this)",
                      core.negotiator.inactive_stopped_answers)
        yield counter("regio_router_chat_messages", "Chat messages relayed (never stored)",
                      s.chat_relayed)
        srtp = CounterMetricFamily("regio_router_srtp_failures",
                                   "SRTP/SRTCP packets dropped by kind", labels=["region", "kind"])
        live = dict.fromkeys(SRTP_FAILURE_KINDS, 0)
        for peer in list(core.negotiator.owners):
            for kind, value in srtp_failures(peer).items():
                live[kind] += value
        for kind in SRTP_FAILURE_KINDS:
            srtp.add_metric([self.region, kind], live[kind] + s.srtp_failures_closed[kind])
        yield srtp
        stun = CounterMetricFamily("regio_router_stun_refused",
                                   "STUN requests to a known ICE ufrag left unanswered, by reason",
                                   labels=["region", "reason"])
        refused = Counter(core.stats.stun_refusals_closed)
        for peer in list(core.negotiator.owners):
            refused.update(stun_refusals(peer))
        for kind in STUN_REFUSAL_KINDS:
            stun.add_metric([self.region, kind], refused[kind])
        yield stun
        mux = core.mux.stats
        drops = CounterMetricFamily("regio_router_udp_dropped",
                                    "Datagrams dropped before reaching a peer, by reason",
                                    labels=["region", "reason"])
        for reason in ("stun_malformed", "stun_unknown_username", "dtls_unknown_address",
                       "rtp_unknown_address", "rtcp_unknown_address", "unknown_kind"):
            drops.add_metric([self.region, reason], getattr(mux, reason))
        yield drops
        for name, doc, table, label in (
            ("regio_router_joins", "Join attempts by result", s.joins, "result"),
            ("regio_router_signaling_messages", "Valid signaling messages by type", s.messages,
             "type"),
            ("regio_router_signaling_errors", "Error replies by code", s.errors, "code"),
            ("regio_router_transports_closed", "Media transports closed by cause",
             s.transports_closed, "cause"),
            ("regio_router_room_claims",
             "Room placements claimed in etcd for rooms opened here, by outcome",
             s.room_claims, "outcome"),
        ):
            family = CounterMetricFamily(name, doc, labels=["region", label])
            for key, value in sorted(table.items()):
                family.add_metric([self.region, key], value)
            yield family
        summary = getattr(core.media, "link_summary", None)
        if summary is not None:
            yield from _link_metrics(summary(), gauge, counter)
        lat = self.hub.latency
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip(lat.BUCKETS, lat.counts, strict=False):
            running += count
            buckets.append((repr(bound), running))
        buckets.append(("+Inf", lat.observations))
        hist = HistogramMetricFamily("regio_router_forwarding_latency_seconds",
                                     "Time from batch read to re-encrypted copies, per packet",
                                     labels=labels)
        hist.add_metric(r, buckets, lat.total)
        yield hist


def registry_for(hub: Hub, region: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RouterCollector(hub, region))
    # process_cpu_seconds_total: dashboards divide it by forwarded packets (CPU per packet).
    ProcessCollector(registry=registry)
    return registry


def metrics_app(registry: CollectorRegistry) -> Starlette:
    """``GET /metrics`` in the Prometheus text format, served in the router's Trio thread
    (so the collector reads the cores without locks)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/metrics", metrics)])


__all__ = ["RouterCollector", "metrics_app", "registry_for"]


_LINK_GAUGES = (
    ("subscribers", "subscribers", "Subscriber connections with a downlink estimate"),
    ("estimate_min_bps", "estimate_min_bps", "Lowest subscriber downlink estimate"),
    ("estimate_median_bps", "estimate_median_bps", "Median subscriber downlink estimate"),
    ("estimate_max_bps", "estimate_max_bps", "Highest subscriber downlink estimate"),
    ("rtt_max_ms", "rtt_max_ms", "Highest subscriber RTT (from RR/SR)"),
)
_LINK_COUNTERS = (
    ("twcc_feedback_sent", "Transport-cc feedback packets sent to publishers"),
    ("remb_sent", "REMB packets sent to goog-remb-only publishers"),
    ("nack_proactive_seqs", "Publisher packets NACKed by the router on seeing a gap"),
    ("nack_recovered", "Publisher packets repaired after a proactive NACK"),
    ("nack_given_up", "Publisher packets given up after the NACK retries"),
    ("nack_served", "Retransmissions sent to subscribers"),
    ("rtx_over_budget", "Retransmissions not sent: over the subscriber's repair budget"),
    ("nack_repeats_ignored", "NACKed numbers already retransmitted within one RTT"),
    ("twcc_received", "Transport-cc feedback packets received from subscribers"),
    ("twcc_unmatched", "Transport-cc feedback naming numbers never sent (dropped)"),
    ("remb_absurd", "REMB with an absurd bitrate (dropped)"),
    ("rtcp_malformed", "Malformed RTCP compounds (dropped)"),
)


_DOWNLINK_COUNTERS = (
    ("downlink_expected", "regio_router_downlink_expected_packets",
     "Packets of repairable (NACK) streams subscribers should have received, up to their "
     "latest receiver report"),
    ("downlink_nacked", "regio_router_downlink_nacked_packets",
     "Packets subscribers NACKed (each once): their downlink loss before recovery"),
    ("downlink_lost", "regio_router_downlink_lost_packets",
     "Packets subscribers still reported lost in two receiver reports in a row: their "
     "downlink loss after recovery"),
)


def _link_metrics(summary: dict[str, float], gauge: Any, counter: Any) -> Iterable[Metric]:
    """The loss-aware link figures (aggregates only; no per-participant labels)."""
    for key, name, doc in _LINK_GAUGES:
        yield gauge(f"regio_router_link_{name}", doc, summary.get(key, 0.0))
    for key, doc in _LINK_COUNTERS:
        yield counter(f"regio_router_link_{key}", doc, summary.get(key, 0.0))
    for key, name, doc in _DOWNLINK_COUNTERS:
        yield counter(name, doc, summary.get(key, 0.0))
