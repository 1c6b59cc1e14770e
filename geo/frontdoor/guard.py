"""The last residency check before a join answer leaves the front door (defence in depth).

:mod:`geo.selection` already chooses only allowed nodes. This check repeats the rule from
first principles, on exactly what is about to be handed out (the room's router and every TURN
node in the ICE server list), so that a bug or a stale cache anywhere upstream cannot become a
GDPR breach: a breach is counted (``regio_frontdoor_residency_violations_total``, which pages
an operator, see ``infra/monitoring``), logged with node ids only, and the join fails closed
with a 503.

Rules (docs/architecture.md §4): a node's jurisdiction is its region's in the topology (a
node claiming another, or in an unknown region, is never allowed); a restricted client gets
only nodes of its own jurisdiction; an ``eea`` room only EEA nodes; an unknown room policy
allows nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from control.topology import Topology
from geo.residency import EEA, ClientPlace
from geo.selection import NodeInfo


@dataclass(frozen=True, slots=True)
class Breach:
    """One node the client must not be given, and why (no address: node ids only)."""

    kind: str
    node_id: str
    reason: str


def residency_breaches(topology: Topology, client: ClientPlace, policy: str,
                       nodes: Iterable[NodeInfo]) -> list[Breach]:
    """Every node of ``nodes`` that the residency rules forbid for this client and room."""
    breaches = []
    for node in nodes:
        region = topology.regions.get(node.region)
        if region is None:
            reason = f"region {node.region!r} is not in the topology"
        elif region.jurisdiction != node.jurisdiction:
            reason = (f"node claims {node.jurisdiction} but region {node.region} is in "
                      f"{region.jurisdiction}")
        elif client.restricted and node.jurisdiction != client.jurisdiction:
            reason = (f"{client.jurisdiction or 'restricted'} client given a "
                      f"{node.jurisdiction} node")
        elif policy == "eea" and node.jurisdiction != EEA:
            reason = f"eea room given a {node.jurisdiction} node"
        elif policy not in ("eea", "nearest"):
            reason = f"unknown room policy {policy!r}"
        else:
            continue
        breaches.append(Breach(node.kind, node.node_id, reason))
    return breaches


__all__ = ["Breach", "residency_breaches"]
