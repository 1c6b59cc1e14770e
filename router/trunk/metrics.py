"""Prometheus metrics of a router's trunks, read from the trunk cores at scrape time.

The ``peer`` label is the peer router's node id (bounded by the cluster's size; never an
address)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from router.trunk.service import TrunkService


class TrunkCollector:
    def __init__(self, service: TrunkService, region: str) -> None:
        self.service = service
        self.region = region

    def collect(self) -> Iterable[Metric]:
        bridge = self.service.bridge
        endpoint = self.service.endpoint
        r = self.region
        up = GaugeMetricFamily("regio_trunks_up", "Established trunks", labels=["region"])
        up.add_metric([r], len(bridge.legs))
        yield up
        per_peer = {
            "loss": GaugeMetricFamily("regio_trunk_loss", "Probe loss to the peer (0..1)",
                                      labels=["region", "peer"]),
            "rtt": GaugeMetricFamily("regio_trunk_rtt_seconds", "Smoothed probe RTT",
                                     labels=["region", "peer"]),
            "jitter": GaugeMetricFamily("regio_trunk_jitter_seconds", "Probe RTT jitter",
                                        labels=["region", "peer"]),
            "relay": GaugeMetricFamily("regio_trunk_path_relayed",
                                       "1 while media to the peer goes through a relay",
                                       labels=["region", "peer"]),
            "dual": GaugeMetricFamily("regio_trunk_path_dual",
                                      "1 while media to the peer goes over two paths",
                                      labels=["region", "peer"]),
        }
        counters = {
            "switches": CounterMetricFamily("regio_trunk_path_switches",
                                            "Path changes of the flow to the peer",
                                            labels=["region", "peer"]),
            "duplicates": CounterMetricFamily("regio_trunk_duplicates",
                                              "Second copies from the peer dropped by SRTP index",
                                              labels=["region", "peer"]),
            "nacks": CounterMetricFamily("regio_trunk_nacks_sent",
                                         "Hop-by-hop NACKs sent to the peer",
                                         labels=["region", "peer"]),
            "retransmits": CounterMetricFamily("regio_trunk_retransmits",
                                               "Packets re-sent to the peer from the trunk "
                                               "packet cache for its hop NACKs",
                                               labels=["region", "peer"]),
            "misses": CounterMetricFamily("regio_trunk_nack_misses",
                                          "Packets the peer NACKed that the trunk packet cache "
                                          "did not hold", labels=["region", "peer"]),
            "auth": CounterMetricFamily("regio_trunk_srtp_auth_failures",
                                        "Trunk packets failing SRTP authentication (spoofed)",
                                        labels=["region", "peer"]),
            "replay": CounterMetricFamily("regio_trunk_srtp_replays",
                                          "Trunk packets refused by the SRTP replay window",
                                          labels=["region", "peer"]),
        }
        for peer, leg in sorted(bridge.legs.items()):
            labels = [r, peer]
            figures = leg.prober.figures() if leg.prober is not None else None
            if figures is not None:
                per_peer["loss"].add_metric(labels, figures.loss)
                per_peer["rtt"].add_metric(labels, figures.rtt_ms / 1000)
                per_peer["jitter"].add_metric(labels, figures.jitter_ms / 1000)
            route = leg.route
            per_peer["relay"].add_metric(labels, 1 if route and route.primary.relay else 0)
            per_peer["dual"].add_metric(labels, 1 if route and route.secondary else 0)
            counters["switches"].add_metric(labels, leg.chooser.switches if leg.chooser else 0)
            counters["duplicates"].add_metric(labels, leg.duplicates)
            counters["nacks"].add_metric(labels, leg.nacks_sent)
            counters["retransmits"].add_metric(labels, leg.retransmits)
            counters["misses"].add_metric(labels, leg.cache_misses)
            counters["auth"].add_metric(labels, leg.session.media.auth_failures)
            counters["replay"].add_metric(labels, leg.session.media.replay_failures)
        yield from per_peer.values()
        yield from counters.values()
        relayed = CounterMetricFamily("regio_trunk_relayed",
                                      "Packets relayed between two other routers",
                                      labels=["region"])
        relayed.add_metric([r], bridge.stats.relayed)
        yield relayed
        refused_env = CounterMetricFamily("regio_trunk_envelopes_refused",
                                          "Relay envelopes refused (malformed, not a peer)",
                                          labels=["region"])
        refused_env.add_metric([r], bridge.stats.envelopes_refused)
        yield refused_env
        for name, doc, table in (
            ("regio_trunk_refused", "Trunk connections refused, by reason",
             endpoint.stats.refused),
            ("regio_trunk_closed", "Trunks that ended, by reason", endpoint.stats.closed),
        ):
            family = CounterMetricFamily(name, doc, labels=["region", "reason"])
            for reason, value in sorted(table.items()):
                family.add_metric([r, reason], value)
            yield family


__all__ = ["TrunkCollector"]
