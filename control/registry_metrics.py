"""Prometheus view of a node's etcd registration (routers and TURN nodes).

A lost lease is the control plane's worst quiet failure: the node still forwards media, but
etcd may have dropped its record and the rooms bound to its lease, so the front door stops
sending anyone there and a room may be placed again elsewhere. Operators alert on it
(``infra/monitoring/rules/regio-alerts.yml``); the figures are read at scrape time from the
:class:`~control.registry.NodeRegistration`'s plain counters.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from control.registry import NodeRegistration

STATES = ("starting", "registered", "lost", "fenced", "stopped")


class RegistrationCollector(Collector):
    """``regio_node_*`` metrics of one registration, labelled by kind and region."""

    def __init__(self, registration: NodeRegistration) -> None:
        self.registration = registration

    def collect(self) -> Iterator[Metric]:
        reg = self.registration
        record = reg.record
        labels = ["kind", "region"]
        values = [record.kind, record.region]
        losses = CounterMetricFamily(
            "regio_node_lease_losses",
            "Times the etcd lease went unconfirmed past its TTL or expired", labels=labels)
        losses.add_metric(values, reg.lease_losses)
        yield losses
        again = CounterMetricFamily(
            "regio_node_reregistrations",
            "Times a fresh lease replaced an expired one (rooms bound to the old one were lost)",
            labels=labels)
        again.add_metric(values, reg.reregistrations)
        yield again
        state = GaugeMetricFamily("regio_node_registration_state",
                                  "1 for the registration's current state",
                                  labels=[*labels, "state"])
        for name in STATES:
            state.add_metric([*values, name], 1.0 if reg.state == name else 0.0)
        yield state


__all__ = ["RegistrationCollector"]
