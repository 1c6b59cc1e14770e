"""The subscribers' downlink loss counters are exported on a real router's ``/metrics`` with
the region as their only label (no client or participant labels: bounded cardinality)."""

from __future__ import annotations

from tests.router.conftest import StartRouter
from tests.router.test_refusals import scrape

NAMES = ("regio_router_downlink_expected_packets_total",
         "regio_router_downlink_nacked_packets_total",
         "regio_router_downlink_lost_packets_total")


async def test_downlink_loss_counters_exported_per_region(start_router: StartRouter) -> None:
    node = await start_router(metrics="127.0.0.1:0")
    metrics = await scrape(node.addresses.metrics_url)
    for name in NAMES:
        samples = {labels: v for (n, labels), v in metrics.items() if n == name}
        assert samples == {frozenset({("region", "eu-west")}): 0.0}, (name, samples)
