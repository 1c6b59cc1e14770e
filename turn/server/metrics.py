"""Prometheus metrics of a TURN node, computed from the core's counters at scrape time.

A custom collector instead of prometheus-client counters incremented per packet: the relay path
only bumps plain integers (see :mod:`turn.server.stats`), and the conversion to metric families
happens when Prometheus asks. Labels are reasons and directions, never addresses (privacy:
ARCHITECTURE.md §4).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

if TYPE_CHECKING:
    from turn.server.core import TurnServerCore


class TurnCollector(Collector):
    """Exposes one core's state as ``regio_turn_*`` metrics."""

    def __init__(self, core: TurnServerCore, region: str) -> None:
        self.core = core
        self.region = region

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        core = self.core
        stats = core.stats
        allocations, permissions, channels = core.counts()
        for name, doc, value in (
            ("regio_turn_allocations", "Active allocations", allocations),
            ("regio_turn_permissions", "Installed permissions", permissions),
            ("regio_turn_channels", "Bound channels", channels),
            ("regio_turn_draining", "1 while the node refuses new allocations",
             int(core.draining)),
            ("regio_turn_allocation_quota", "Allocations this node accepts (--total-quota)",
             core.config.total_quota),
        ):
            gauge = GaugeMetricFamily(name, doc, labels=["region"])
            gauge.add_metric([self.region], value)
            yield gauge
        packets = CounterMetricFamily(
            "regio_turn_relayed_packets", "Relayed packets by direction",
            labels=["region", "direction"],
        )
        packets.add_metric([self.region, "to_peer"], stats.packets_to_peers)
        packets.add_metric([self.region, "to_client"], stats.packets_from_peers)
        yield packets
        octets = CounterMetricFamily(
            "regio_turn_relayed_bytes", "Relayed payload bytes by direction",
            labels=["region", "direction"],
        )
        octets.add_metric([self.region, "to_peer"], stats.bytes_to_peers)
        octets.add_metric([self.region, "to_client"], stats.bytes_from_peers)
        yield octets
        refused = CounterMetricFamily(
            "regio_turn_allocations_refused",
            "Allocate requests refused for lack of room, by reason (user_quota and "
            "network_quota are 486; total_quota, relay_ports and draining are 508)",
            labels=["region", "reason"],
        )
        for reason in ("user_quota", "network_quota", "total_quota", "relay_ports", "draining"):
            refused.add_metric([self.region, reason], stats.refused_allocations[reason])
        yield refused
        sources = GaugeMetricFamily(
            "regio_turn_unauthenticated_sources",
            "Unauthenticated UDP sources with a tracked byte budget (anti-amplification)",
            labels=["region"],
        )
        sources.add_metric([self.region], len(core.amplification))
        yield sources
        for name, doc, counter in (
            ("regio_turn_amplification_budget",
             "Byte-budget table changes by reason (tracked, expired, evicted, authenticated)",
             core.amplification.counters),
            ("regio_turn_auth_failures", "Failed or challenged authentications by reason",
             stats.auth_failures),
            ("regio_turn_peer_denied", "Refused peer addresses by reason", stats.peer_denied),
            ("regio_turn_dropped", "Dropped input by reason", stats.dropped),
            ("regio_turn_requests", "STUN requests by method", stats.requests),
            ("regio_turn_reservations", "EVEN-PORT port reservations by outcome",
             stats.reservations),
        ):
            family = CounterMetricFamily(name, doc, labels=["region", "reason"])
            for reason, value in sorted(counter.items()):
                family.add_metric([self.region, reason], value)
            yield family


def registry_for(core: TurnServerCore, region: str) -> CollectorRegistry:
    """A fresh registry holding only this core's metrics (no global state, test-friendly)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TurnCollector(core, region))
    # process_cpu_seconds_total: dashboards divide it by forwarded packets (CPU per packet).
    ProcessCollector(registry=registry)
    return registry


__all__ = ["TurnCollector", "registry_for"]
