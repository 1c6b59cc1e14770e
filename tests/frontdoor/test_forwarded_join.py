"""Issue 15 item 2: a trusted proxy outside the EEA whose forwarding header is empty, garbled or
out of range. The join must land in the fail-closed jurisdiction, never where the proxy is."""

from __future__ import annotations

import pytest
import trio

from benchmarks.frontdoor_cluster import TOPOLOGY_FILE
from control.schema import NodeAddress, NodeRecord
from control.topology import load_topology
from geo.client_address import parse_trusted_proxies
from geo.frontdoor.config import FrontdoorConfig
from geo.frontdoor.metrics import FrontdoorMetrics
from geo.frontdoor.service import JoinService
from geo.frontdoor.snapshot import SnapshotCache
from tests.frontdoor.test_join_properties import GEO, FakeView, MemoryRooms

US_PROXY = "8.8.8.8"  # the embedded database puts it in the US (checked below)
US_CLIENT = "3.3.3.3"
DE_CLIENT = "81.169.145.1"


def _record(node_id: str, kind: str, region: str, jurisdiction: str, port: int) -> NodeRecord:
    address = NodeAddress("wss" if kind == "router" else "udp", "127.0.0.1", port)
    return NodeRecord(node_id, kind, region, jurisdiction, (address,), 100, 0, False,  # type: ignore[arg-type]
                      "t", 0.0, "i")


def _service() -> JoinService:
    topology = load_topology(TOPOLOGY_FILE)
    view = FakeView(topology, {
        "eu-r": _record("eu-r", "router", "eu-central", "EEA", 1000),
        "eu-t": _record("eu-t", "turn", "eu-central", "EEA", 2000),
        "us-r": _record("us-r", "router", "us-east", "US", 1001),
        "us-t": _record("us-t", "turn", "us-east", "US", 2001),
    })
    rooms = MemoryRooms(view)
    config = FrontdoorConfig(rate_limit=1e9, rate_burst=1e9)
    return JoinService(config, GEO, SnapshotCache(view, "/s"), rooms, rooms.place,
                       FrontdoorMetrics(), trusted=parse_trusted_proxies([f"{US_PROXY}/32"]))


def _join(service: JoinService, room: str, headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    client = service.client_of(US_PROXY, headers)
    answer = trio.run(service.join, room, b"", client)
    assert answer.status == 200, answer
    return {"jurisdiction": answer.body["jurisdiction"], "region": answer.body["region"]}


def test_the_setup_tells_proxy_and_clients_apart() -> None:
    assert GEO.lookup(US_PROXY).country == "US"
    assert GEO.lookup(US_CLIENT).country == "US"
    assert GEO.lookup(DE_CLIENT).country == "DE"
    service = _service()
    assert _join(service, "good-us", [(b"x-forwarded-for", US_CLIENT.encode())]) == {
        "jurisdiction": "US", "region": "us-east"}
    assert _join(service, "good-de", [(b"x-forwarded-for", DE_CLIENT.encode())]) == {
        "jurisdiction": "EEA", "region": "eu-central"}


@pytest.mark.parametrize("value", [
    b"", b" ", b",", b"81.169.145.1, ", b", 81.169.145.1", b"81.169.145.1,,10.0.0.1",
    b"garbage", b"81.169.145.999", b"81.169.145.1:70000", b"[2001:db8::1]:99999",
    b"3.3.3.3, 1.2.3", b"unknown",
])
def test_bad_header_from_a_us_proxy_fails_closed(value: bytes) -> None:
    service = _service()
    got = _join(service, "room", [(b"x-forwarded-for", value)])
    assert got == {"jurisdiction": "EEA", "region": "eu-central"}


def test_missing_header_from_a_us_proxy_fails_closed() -> None:
    assert _join(_service(), "room", []) == {"jurisdiction": "EEA", "region": "eu-central"}
