"""``regio top --once``: a frame built from a real etcd and a real metrics endpoint."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from control import schema
from control.bootstrap import init_cluster
from control.cli import main
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd, free_ports
from control.schema import LinkRecord, NodeAddress, NodeRecord, RoomRecord, RoomRouterRecord
from control.topology import load_topology

REPO = Path(__file__).resolve().parents[2]


def node(node_id: str, region: str, jurisdiction: str, metrics_port: int | None = None
         ) -> NodeRecord:
    addresses = [NodeAddress("udp", "127.0.0.1", 7000)]
    if metrics_port is not None:
        addresses.append(NodeAddress("metrics", "127.0.0.1", metrics_port))
    return NodeRecord(node_id, "router", region, jurisdiction, tuple(addresses), 100, 3,
                      False, "0.1.0", time.time(), "i1")


async def seed(client: EtcdClient, metrics_port: int) -> None:
    await init_cluster(client, load_topology(REPO / "infra" / "local" / "topology.toml"))
    eu = node("eu-central-router-1", "eu-central", "EEA", metrics_port)
    north = node("eu-north-router-1", "eu-north", "EEA")
    us = node("us-east-router-1", "us-east", "US")
    for record in (eu, north, us):
        await client.put(schema.node_key(record.node_id), record.encode())
    now = time.time()
    rooms = [RoomRecord("fine", eu.node_id, "eu-central", "eea", now),
             RoomRecord("leaky", us.node_id, "us-east", "eea", now),
             RoomRecord("lost", "gone-router-1", "eu-north", "nearest", now)]
    for room in rooms:
        await client.put(schema.room_key(room.room), room.encode())
    for router, region in ((eu.node_id, "eu-central"), (north.node_id, "eu-north")):
        share = RoomRouterRecord("fine", router, region, "EEA", now)
        await client.put(schema.room_router_key("fine", router), share.encode())
    link = LinkRecord(eu.node_id, north.node_id, 0.02, 12.5, 1.0, 50, now)
    await client.put(schema.link_key(link.src, link.dst), link.encode())


@pytest.mark.etcd
def test_top_once_shows_nodes_rooms_trunks_and_residency(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = CollectorRegistry()
    Gauge("regio_router_sessions", "sessions", registry=registry).set(7)
    Counter("regio_router_packets_out", "packets", registry=registry).inc(1000)
    metrics_port = free_ports(1)[0]
    server, thread = start_http_server(metrics_port, "127.0.0.1", registry=registry)
    etcd = LocalEtcd(1, base_dir=tmp_path / "etcd")

    async def setup() -> None:
        await etcd.start()
        async with EtcdClient(etcd.config()) as client:
            await seed(client, metrics_port)

    try:
        trio.run(setup)
        status = main(["top", "--once", "--json", "--interval", "0.2", "--etcd", etcd.urls])
    finally:
        etcd.stop()
        server.shutdown()
        thread.join()
    frame = json.loads(capsys.readouterr().out)
    assert status == 1  # a residency violation is a problem worth an exit status
    nodes = {n["node"]: n for n in frame["nodes"]}
    eu = nodes["eu-central-router-1"]
    assert (eu["sessions"], eu["pps_out"], eu["load"], eu["rooms"]) == ("7", "0", "3/100", 1)
    assert nodes["us-east-router-1"]["sessions"] == "?"  # no metrics endpoint registered
    assert nodes["eu-north-router-1"]["rooms"] == 1  # its share of the spanning room
    rooms = {r["room"]: r for r in frame["rooms"]}
    assert rooms["fine"]["residency"] == "ok"
    assert rooms["fine"]["regions"] == "eu-central, eu-north"
    assert rooms["leaky"]["residency"] == "VIOLATION"
    assert rooms["lost"]["residency"] == "orphaned"
    assert (frame["violations"], frame["orphaned"]) == (1, 1)
    [trunk] = frame["trunks"]
    assert (trunk["src"], trunk["dst"], trunk["loss"], trunk["rooms"]) == (
        "eu-central-router-1", "eu-north-router-1", "2.0%", 1)

    # The rich rendering of the same frame (what the live view draws).
    etcd2 = LocalEtcd(1, base_dir=tmp_path / "etcd2")
    trio.run(etcd2.start)
    try:
        assert main(["top", "--once", "--interval", "0.1", "--etcd", etcd2.urls]) == 0
    finally:
        etcd2.stop()
    out = capsys.readouterr().out
    assert "residency: ok (0 rooms)" in out
    assert "nodes" in out and "rooms" in out and "none" in out
