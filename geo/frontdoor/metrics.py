"""Prometheus metrics of the front door. No label ever carries an address or a room name.

Labels are bounded sets: jurisdictions and regions come from the topology, results from
:data:`RESULTS`, outcomes from :class:`geo.geoip.Outcome`. Each :class:`FrontdoorMetrics` has
its own registry, so several front doors (tests) can live in one process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from geo.geoip import GeoIP

RESULTS = (
    "ok", "bad_request", "rate_limited", "no_capacity", "room_outside_jurisdiction",
    "unavailable", "too_large",
)

#: Latency buckets for sub-millisecond work (GeoIP lookups, cached assignments).
FAST_BUCKETS = (0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01,
                0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _StateCollector(Collector):
    """GeoIP counters and cache state, read at scrape time (nothing on the join path)."""

    def __init__(self, geoip: GeoIP, state: Callable[[], dict[str, float]]) -> None:
        self.geoip = geoip
        self.state = state

    def collect(self) -> Iterator[Metric]:
        stats = dict(self.geoip.stats)
        lookups = CounterMetricFamily(
            "regio_frontdoor_geoip_lookups", "GeoIP lookups by outcome", labels=["outcome"]
        )
        for outcome, count in sorted(stats.items()):
            if outcome not in ("reloads", "reload_failures"):
                lookups.add_metric([outcome], count)
        yield lookups
        yield CounterMetricFamily("regio_frontdoor_geoip_reloads",
                                  "GeoIP databases put in service", value=stats.get("reloads", 0))
        yield CounterMetricFamily("regio_frontdoor_geoip_reload_failures",
                                  "GeoIP database files that failed to load",
                                  value=stats.get("reload_failures", 0))
        info = self.geoip.info
        yield GaugeMetricFamily("regio_frontdoor_geoip_build_epoch",
                                "Build time of the GeoIP database in service (0: none)",
                                value=float(info.build_epoch) if info else 0.0)
        for name, value in sorted(self.state().items()):
            yield GaugeMetricFamily(f"regio_frontdoor_{name}", name.replace("_", " "),
                                    value=value)


class FrontdoorMetrics:
    """The front door's collectors on a private registry."""

    def __init__(self) -> None:
        # *_created series double the output and carry nothing here.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.joins = Counter(
            "regio_frontdoor_joins", "Join requests by client jurisdiction, region and result",
            ["jurisdiction", "region", "result"], registry=self.registry,
        )
        self.lookup_seconds = Histogram(
            "regio_frontdoor_geoip_lookup_seconds", "GeoIP lookup latency",
            buckets=FAST_BUCKETS, registry=self.registry,
        )
        self.assignment_seconds = Histogram(
            "regio_frontdoor_assignment_seconds",
            "Time to decide a join's router (cached room, or etcd placement of a new one)",
            ["path"], buckets=FAST_BUCKETS, registry=self.registry,
        )
        self.join_seconds = Histogram(
            "regio_frontdoor_join_seconds", "Join handling time inside the front door",
            buckets=FAST_BUCKETS, registry=self.registry,
        )
        self.residency_violations = Counter(
            "regio_frontdoor_residency_violations",
            "Nodes the last residency check caught about to be handed to a client who may "
            "not use them (the join was refused; any increase is a bug upstream)",
            ["kind"], registry=self.registry,
        )
        for kind in ("router", "turn"):  # both series exist from the start, at 0
            self.residency_violations.labels(kind)
        self._children: dict[tuple[str, str, str], Counter] = {}
        self._assignment = {path: self.assignment_seconds.labels(path)
                            for path in ("cached", "placed")}

    def attach(self, geoip: GeoIP, state: Callable[[], dict[str, float]]) -> None:
        self.registry.register(_StateCollector(geoip, state))

    def assignment(self, path: str) -> Histogram:
        """The ``path`` child of the assignment histogram (``labels()`` costs more than the
        observation itself, so the two children are made once)."""
        child = self._assignment.get(path)
        if child is None:
            child = self._assignment[path] = self.assignment_seconds.labels(path)
        return child

    def residency_violation(self, kind: str) -> None:
        self.residency_violations.labels(kind).inc()

    def count_join(self, jurisdiction: str | None, region: str | None, result: str) -> None:
        key = (jurisdiction or "none", region or "none", result)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.joins.labels(*key)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["RESULTS", "FrontdoorMetrics"]
