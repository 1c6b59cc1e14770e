"""The front door's last residency check (geo/frontdoor/guard.py): it agrees with selection's
rule on every node, place and policy (hypothesis), and on the real join path it catches a node
a stale cache would have handed out, counts it and fails closed."""

from __future__ import annotations

from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from control.jurisdictions import assigned_country_codes
from control.schema import NodeAddress, NodeRecord
from control.topology import Topology
from geo.frontdoor.guard import residency_breaches
from geo.frontdoor.service import JoinService
from geo.residency import place_client
from geo.selection import NodeInfo, TurnServers, allowed_jurisdictions, node_allowed
from tests.frontdoor.test_join_properties import FakeView, MemoryRooms, _service
from tests.geo.topologies import TOPOLOGIES, WORLD

COUNTRIES = sorted(assigned_country_codes())


@st.composite
def cases(draw: st.DrawFn) -> tuple[Topology, str | None, str, list[NodeInfo]]:
    topology = draw(st.sampled_from(TOPOLOGIES))
    regions = [*sorted(topology.regions), "nowhere"]
    jurisdictions = sorted(topology.jurisdictions)
    nodes = [NodeInfo(f"n{i}", draw(st.sampled_from(["router", "turn"])),
                      draw(st.sampled_from(regions)), draw(st.sampled_from(jurisdictions)), 0, 1)
             for i in range(draw(st.integers(0, 6)))]
    country = draw(st.none() | st.sampled_from(COUNTRIES))
    policy = draw(st.sampled_from(["eea", "nearest", "bogus"]))
    return topology, country, policy, nodes


@settings(max_examples=300)
@given(cases())
def test_guard_agrees_with_selection_rule(case: tuple[Topology, str | None, str, list[NodeInfo]]
                                          ) -> None:
    topology, country, policy, nodes = case
    place = place_client(topology, country)
    allowed = allowed_jurisdictions(place, policy)  # type: ignore[arg-type]
    flagged = {b.node_id for b in residency_breaches(topology, place, policy, nodes)}
    assert flagged == {n.node_id for n in nodes if not node_allowed(topology, n, allowed)}


def _record(node_id: str, kind: str, region: str, jurisdiction: str, port: int) -> NodeRecord:
    scheme = "wss" if kind == "router" else "udp"
    return NodeRecord(node_id, kind, region, jurisdiction,  # type: ignore[arg-type]
                      (NodeAddress(scheme, "127.0.0.1", port),), 10, 0, False, "t", 0.0, "i")


def _violations(service: JoinService) -> dict[str, float | None]:
    registry = service.metrics.registry
    return {kind: registry.get_sample_value("regio_frontdoor_residency_violations_total",
                                            {"kind": kind}) for kind in ("router", "turn")}


def test_stale_turn_cache_is_caught_and_the_join_fails_closed() -> None:
    eu_region = next(r for r, reg in sorted(WORLD.regions.items()) if reg.jurisdiction == "EEA")
    us_region = next(r for r, reg in sorted(WORLD.regions.items()) if reg.jurisdiction == "US")
    records = {"r-eu": _record("r-eu", "router", eu_region, "EEA", 1000),
               "t-eu": _record("t-eu", "turn", eu_region, "EEA", 2000),
               "t-us": _record("t-us", "turn", us_region, "US", 2001)}
    view = FakeView(WORLD, records)
    service = _service(view, MemoryRooms(view))
    german = [(b"x-forwarded-for", b"5.1.83.1")]  # a German address in the embedded database

    def join() -> Any:
        return trio.run(service.join, "room", b"", service.client_of("127.0.0.1", german))

    ok = join()
    assert ok.status == 200
    assert _violations(service) == {"router": 0.0, "turn": 0.0}
    # A cache entry that went stale (or a selection bug) would now offer the US TURN node.
    key = next(iter(service._turns))
    us_turn = service.snapshots.get().infos["t-us"]
    service._turns[key] = TurnServers((us_turn,))
    refused = join()
    assert refused.status == 503
    assert refused.body["error"] == "residency_check_failed"
    assert "t-us" not in str(refused.body)
    assert _violations(service) == {"router": 0.0, "turn": 1.0}
