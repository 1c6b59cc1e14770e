"""The front door against a real local cluster, over real HTTP.

Real etcd; one real ``regio router`` and one real ``regio turn`` in each of eu-central,
eu-north (EEA) and us-east, each registering itself with a real lease (no registry records
stand in for nodes); ``regio frontdoor`` as a subprocess trusting 127.0.0.1 as its proxy. A join
answer is taken to the router it names over its ws signaling, and to another router, which
refuses it. Tests that destroy nodes (drain, SIGKILL) run last, then the privacy scan, which
reads every process's log, including the routers'.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from benchmarks.frontdoor_cluster import (
    REPO,
    LocalFrontdoorCluster,
    Proc,
    RouterProc,
    python_env,
)
from control import schema
from control.drain import request_drain
from control.etcd import EtcdClient
from control.localetcd import free_ports
from control.rooms import room_routers
from control.schema import NodeRecord
from geo.locations import country_location, haversine_km
from router.signaling.client import SignalingClient, SignalingClosed

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

EEA_COUNTRIES = ("DE", "FR", "NO", "IS", "LI", "RE", "GP", "AX")
OTHER_COUNTRIES = ("US", "JP", "BR")
REGIONS = ("eu-central", "eu-north", "us-east")
EEA_REGIONS = ("eu-central", "eu-north")
LEASE_TTL = 3
"""Lease TTL of every node: a SIGKILLed node leaves the registry this many seconds later."""


@dataclass
class Cluster:
    cluster: LocalFrontdoorCluster
    frontdoor: Proc
    url: str
    routers: dict[str, RouterProc]
    turns: dict[str, Proc]
    used: set[str]
    metrics: str = ""
    """host:port of the front door's --metrics-listen listener."""

    @property
    def hostport(self) -> str:
        return self.url.split("://", 1)[1]

    def join(self, room: str, address: str | None = None, body: Any = None,
             raw: bytes | None = None, headers: dict[str, str] | None = None
             ) -> tuple[int, dict[str, Any], dict[str, str]]:
        conn = http.client.HTTPConnection(self.hostport, timeout=10)
        sent = dict(headers or {})
        if address is not None:
            self.used.add(address)
            sent["X-Forwarded-For"] = address
        payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        try:
            conn.request("POST", f"/v1/rooms/{room}/join", body=payload, headers=sent)
            response = conn.getresponse()
            data = response.read()
            return response.status, json.loads(data), {k.lower(): v for k, v in
                                                        response.getheaders()}
        finally:
            conn.close()

    def get(self, path: str, *, metrics: bool = False) -> tuple[int, bytes]:
        """GET ``path`` from the public port, or (``metrics``) from the metrics listener."""
        conn = http.client.HTTPConnection(self.metrics if metrics else self.hostport, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = LocalFrontdoorCluster(Path(tmp_path_factory.mktemp("frontdoor-cluster")))
    cluster.start()
    try:
        # TURN processes start first (they need no waiting for each other), routers meanwhile.
        turns = {region: cluster.add_turn(region, node_id=f"{region}-turn-1",
                                          lease_ttl=LEASE_TTL)[0] for region in REGIONS}
        routers = {region: cluster.add_router(region, node_id=f"{region}-router-1",
                                              lease_ttl=LEASE_TTL, drain_deadline=60)
                   for region in REGIONS}
        for proc in turns.values():
            proc.wait_line("regio turn ready", timeout=60)
        metrics = f"127.0.0.1:{free_ports(1)[0]}"
        frontdoor, url = cluster.add_frontdoor(
            "frontdoor", "--trusted-proxy", "127.0.0.1/32", "--rate-limit", "1",
            "--rate-burst", "8", "--access-log", "--token-ttl", "120",
            "--metrics-listen", metrics)
        live = Cluster(cluster, frontdoor, url, routers, turns, set(), metrics)
        _wait_for_every_node(live)
        yield live
    finally:
        cluster.stop()


def _nodes(live: Cluster) -> dict[str, NodeRecord]:
    """Every registered node's record, by node id, as etcd has it now."""
    async def read(client: EtcdClient) -> dict[str, NodeRecord]:
        _, kvs = await client.get_prefix(schema.NODES_PREFIX)
        records = (NodeRecord.decode(kv.value) for kv in kvs)
        return {r.node_id: r for r in records}
    result: dict[str, NodeRecord] = live.cluster.run(read)
    return result


def _wait_for_every_node(live: Cluster, timeout: float = 60.0) -> None:
    """Until etcd holds every router and TURN node and the front door's cluster view (which
    follows etcd with a short lag) lists them all."""
    wanted = {f"{r}-{kind}-1" for r in REGIONS for kind in ("router", "turn")}
    deadline = time.monotonic() + timeout
    while not wanted <= set(_nodes(live)):
        assert time.monotonic() < deadline, f"nodes missing: {wanted - set(_nodes(live))}"
        time.sleep(0.2)
    _, body = live.get("/v1/prometheus/targets", metrics=True)
    while not wanted <= {g["labels"].get("regio_node") for g in json.loads(body)}:
        assert time.monotonic() < deadline, body
        time.sleep(0.2)
        _, body = live.get("/v1/prometheus/targets", metrics=True)


def _nearest_region(live: Cluster, country: str) -> str:
    location = country_location(country)
    assert location is not None
    regions = live.cluster.topology.regions.values()
    return min(regions, key=lambda r: haversine_km(location, r.location)).name


def test_eea_countries_land_in_eea_regions(live: Cluster, country_addresses: dict[str, list[str]]
                                           ) -> None:
    topology = live.cluster.topology
    for index, country in enumerate(EEA_COUNTRIES):
        status, body, headers = live.join(f"eea-{index}", country_addresses[country][0])
        assert status == 200, body
        assert body["country"] == country and body["jurisdiction"] == "EEA"
        assert topology.regions[body["region"]].jurisdiction == "EEA"
        assert body["router"]["jurisdiction"] == "EEA"
        # The real router of that region, at the ws (loopback) signaling URL it announced.
        router = live.routers[body["router"]["region"]]
        assert body["router"]["node"] == router.node_id
        assert body["router"]["signaling_url"] == router.signaling_url
        assert router.signaling_url.startswith("ws://127.0.0.1:")
        assert body["ice_servers"], body
        for server in body["ice_servers"]:
            region = server["username"].split(":")[1]
            assert topology.regions[region].jurisdiction == "EEA"
            assert all(u.startswith(("turn:", "turns:")) for u in server["urls"])
        assert headers["cache-control"] == "no-store"


def test_other_countries_land_in_the_nearest_region(
        live: Cluster, country_addresses: dict[str, list[str]]) -> None:
    for country in OTHER_COUNTRIES:
        status, body, _ = live.join(f"other-{country}", country_addresses[country][0])
        assert status == 200, body
        assert body["country"] == country
        assert body["region"] == _nearest_region(live, country)
        assert body["router"]["node"] == live.routers[body["region"]].node_id


def test_join_answer_shape_and_existing_room(live: Cluster,
                                             country_addresses: dict[str, list[str]]) -> None:
    de, fr = country_addresses["DE"][1], country_addresses["FR"][1]
    status, first, _ = live.join("shape", de, {"name": "Ada", "policy": "eea", "size": "small"})
    assert status == 200, first
    for key in ("room", "participant", "policy", "mode", "jurisdiction", "region", "router",
                "ice_servers", "token", "expires_at"):
        assert key in first
    assert (first["policy"], first["mode"]) == ("eea", "p2p")
    assert first["expires_at"] > time.time()
    assert first["token"].count(".") == 2
    # A second join (another policy and size asked) stays on the room's router with the room's
    # policy and mode.
    status, second, _ = live.join("shape", fr, {"policy": "nearest"})
    assert status == 200, second
    assert second["router"] == first["router"] and second["policy"] == "eea"
    assert second["mode"] == "p2p" and second["participant"] != first["participant"]
    # A US client may join an eea room: served from EEA nodes only.
    status, third, _ = live.join("shape", country_addresses["US"][1])
    assert status == 200, third
    assert third["router"]["jurisdiction"] == "EEA"
    assert all(s["username"].split(":")[1].startswith("eu-") for s in third["ice_servers"])


def test_room_without_trunks_stays_on_its_router(
        live: Cluster, country_addresses: dict[str, list[str]]) -> None:
    """These routers have no trunk certificate, so a room cannot span them: a German client
    of a ``nearest`` room held in us-east is refused with 409 (the spanning case, with trunks,
    is tests/trunk/test_placement_e2e.py); a US client still joins it on its router, and the
    room's etcd record lists that one router."""
    status, body, _ = live.join("us-room", country_addresses["US"][2])
    assert status == 200 and body["region"] == "us-east"
    status, body, _ = live.join("us-room", country_addresses["DE"][2])
    assert status == 409
    assert body["error"] == "room_outside_jurisdiction"
    status, body, _ = live.join("us-room", country_addresses["BR"][2])
    assert status == 200 and body["region"] == "us-east", body

    async def members(client: EtcdClient) -> set[str]:
        return {r.router for r in await room_routers(client, "us-room")}

    assert live.cluster.run(members) == {live.routers["us-east"].node_id}


def test_unlocatable_clients_fail_closed(live: Cluster) -> None:
    for forwarded in ("10.1.2.3", "not-an-address", "::ffff:192.168.1.1", "unknown"):
        status, body, _ = live.join("fail-closed", forwarded)
        assert status == 200, body
        assert body["jurisdiction"] == "EEA" and body["router"]["jurisdiction"] == "EEA"


@pytest.mark.parametrize(("room", "raw", "needle"), [
    ("bad%20room", b"", "room"),
    ("x" * 65, b"", "room"),
    ("ok", b"{not json", "JSON"),
    ("ok", b"[1]", "object"),
    ("ok", b'{"policy": "strict"}', "policy"),
    ("ok", b'{"size": 3}', "size"),
    ("ok", b'{"name": 5}', "name"),
    ("ok", b'{"colour": "red"}', "colour"),
])
def test_bad_requests_are_400(live: Cluster, room: str, raw: bytes, needle: str) -> None:
    status, body, _ = live.join(room, f"10.99.{len(live.used)}.1", raw=raw)
    assert status == 400
    assert needle in body["message"]


def test_large_body_is_413(live: Cluster) -> None:
    status, body, _ = live.join("big", "192.0.2.2", raw=b'{"name": "' + b"x" * 5000 + b'"}')
    assert status == 413 and body["error"] == "body_too_large"


def test_rate_limit_is_429_with_retry_after(live: Cluster,
                                            country_addresses: dict[str, list[str]]) -> None:
    address = country_addresses["JP"][1]
    statuses = []
    for _ in range(12):
        status, body, headers = live.join("limited", address)
        statuses.append(status)
        if status == 429:
            assert int(headers["retry-after"]) >= 1
            assert body["error"] == "rate_limited"
    assert 200 in statuses and 429 in statuses


def test_health_metrics_and_targets(live: Cluster) -> None:
    status, body = live.get("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    for path in ("/metrics", "/v1/prometheus/targets"):
        assert live.get(path)[0] == 404  # never on the public join port (issue 15 item 8)
    status, body = live.get("/metrics", metrics=True)
    assert status == 200
    text = body.decode()
    assert 'regio_frontdoor_joins_total{jurisdiction="EEA",region="eu-central",result="ok"}' \
        in text or 'jurisdiction="EEA",region="eu-north",result="ok"' in text
    assert "regio_frontdoor_geoip_lookup_seconds_bucket" in text
    assert "regio_frontdoor_assignment_seconds_bucket" in text
    assert 'regio_frontdoor_geoip_lookups_total{outcome="found"}' in text
    status, body = live.get("/v1/prometheus/targets", metrics=True)
    groups = json.loads(body)
    nodes = {g["labels"].get("regio_node") for g in groups}
    assert {"eu-central-router-1", "eu-north-router-1", "us-east-router-1"} <= nodes
    own = [g["targets"] for g in groups if g["labels"]["job"] == "regio-frontdoor"]
    assert own == [[live.metrics]]
    assert all(len(g["targets"]) == 1 and ":" in g["targets"][0] for g in groups)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_front_door_refuses_tls_1_1(live: Cluster, tls_files: tuple[str, str]) -> None:
    cert, key = tls_files
    proc, url = live.cluster.add_frontdoor("frontdoor-tls", "--tls-cert", cert, "--tls-key", key)
    assert url.startswith("https://")
    host, port = url.split("://")[1].rsplit(":", 1)
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError) as refused:
        conn = http.client.HTTPSConnection(host, int(port), context=old, timeout=5)
        conn.request("GET", "/healthz")
    # The client did offer TLS 1.1 (no client-side "no protocols available"): the server
    # refused it (an alert or a closed connection, depending on the OpenSSL build).
    assert "NO_PROTOCOLS_AVAILABLE" not in str(refused.value).upper(), refused.value
    modern = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    modern.check_hostname, modern.verify_mode = False, ssl.CERT_NONE
    modern.maximum_version = ssl.TLSVersion.TLSv1_2
    conn = http.client.HTTPSConnection(host, int(port), context=modern, timeout=5)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    assert conn.sock.version() == "TLSv1.2"  # type: ignore[union-attr]
    conn.close()
    proc.stop()


def test_hypercorn_server_option(live: Cluster, country_addresses: dict[str, list[str]]
                                 ) -> None:
    """``--http-server hypercorn`` (the library server) answers the same API."""
    proc, url = live.cluster.add_frontdoor("frontdoor-hypercorn", "--http-server", "hypercorn",
                                           "--trusted-proxy", "127.0.0.1/32")
    other = Cluster(live.cluster, proc, url, live.routers, live.turns, live.used)
    status, body, headers = other.join("hyper-room", country_addresses["DE"][0],
                                       {"policy": "eea"})
    assert status == 200 and body["jurisdiction"] == "EEA", body
    assert headers["cache-control"] == "no-store"
    assert other.get("/healthz")[0] == 200
    status, body, _ = other.join("big", "192.0.2.2", raw=b'{"name": "' + b"x" * 5000 + b'"}')
    assert status == 413 and body["error"] == "body_too_large"
    proc.stop()


def test_plain_http_refused_off_loopback() -> None:
    port = free_ports(1)[0]
    result = subprocess.run(
        [sys.executable, "-m", "control", "frontdoor", "--etcd", "http://127.0.0.1:1",
         "--listen", f"0.0.0.0:{port}"],
        capture_output=True, env=python_env(), cwd=str(REPO), timeout=30)
    assert result.returncode == 2
    assert b"refusing plain HTTP" in result.stderr


def test_join_answer_is_accepted_by_its_router(live: Cluster,
                                               country_addresses: dict[str, list[str]]) -> None:
    """End to end: the answer's token opens a session on the router the answer names (over the
    ``signaling_url`` it gives), with the answer's participant id; another router refuses the
    same token with ``wrong_router``."""
    status, body, _ = live.join("e2e-room", country_addresses["DE"][0],
                                {"name": "Grace", "size": "large"})
    assert status == 200, body
    assert body["mode"] == "sfu" and body["router"]["jurisdiction"] == "EEA"
    url = body["router"]["signaling_url"]
    assert url.startswith("ws://127.0.0.1:") and url.endswith("/v1/signal")
    other = next(r for r in live.routers.values() if r.node_id != body["router"]["node"])

    async def session() -> tuple[dict[str, Any], dict[str, Any], SignalingClosed]:
        client = await SignalingClient.connect(url, timeout=30)
        try:
            await client.send({"type": "join", "token": body["token"]})
            joined = await client.recv_type("joined", timeout=30)
        finally:
            await client.close()
        wrong = await SignalingClient.connect(other.signaling_url, timeout=30)
        try:
            await wrong.send({"type": "join", "token": body["token"]})
            error = await wrong.recv_type("error", timeout=30)
            with pytest.raises(SignalingClosed) as closed:
                while True:
                    await wrong.recv(timeout=30)
        finally:
            await wrong.close()
        return joined, error, closed.value

    joined, error, closed = trio.run(session)
    assert joined["participant"] == body["participant"], joined
    assert joined["room"] == "e2e-room" and joined["mode"] == "sfu"
    assert error["code"] == "wrong_router", error
    assert closed.code == 4003, closed


def _drain_cli(live: Cluster, node_id: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "control", "node", "drain", node_id, "--etcd",
         live.cluster.etcd_url], capture_output=True, env=python_env(), cwd=str(REPO),
        timeout=60)
    assert result.returncode == 0, result.stderr
    assert b"is draining" in result.stdout


def test_every_eea_node_gone_means_503(live: Cluster,
                                       country_addresses: dict[str, list[str]]) -> None:
    """eu-central's router and TURN drained (``regio node drain``, ``request_drain``),
    eu-north's router and TURN SIGKILLed by pid (their leases expire): no EEA node is left to
    take a room, so EEA clients get 503 ``no_capacity``, never a US node; US clients still
    get us-east."""
    _drain_cli(live, live.routers["eu-central"].node_id)

    async def drain_turn(client: EtcdClient) -> None:
        await request_drain(client, "eu-central-turn-1")

    live.cluster.run(drain_turn)
    for proc in (live.routers["eu-north"].proc, live.turns["eu-north"]):
        proc.stop(signal.SIGKILL)  # dead: the leases expire after LEASE_TTL seconds
    eea = {f"{r}-{kind}-1" for r in EEA_REGIONS for kind in ("router", "turn")}
    deadline = time.monotonic() + 60
    while True:
        nodes = _nodes(live)
        usable = {n for n in eea if n in nodes and not nodes[n].draining}
        if not usable:
            break
        assert time.monotonic() < deadline, f"EEA nodes still taking rooms: {usable}"
        time.sleep(0.3)
    assert "us-east-router-1" in nodes and not nodes["us-east-router-1"].draining
    # The front door's view follows etcd with a short lag.
    deadline = time.monotonic() + 30
    while True:
        status, body, _ = live.join(f"after-{time.monotonic_ns()}", country_addresses["AX"][2])
        if status == 503 or time.monotonic() > deadline:
            break
        assert status == 200 and body["router"]["jurisdiction"] == "EEA", body
        time.sleep(0.3)
    assert status == 503 and body["error"] == "no_capacity", body
    for country in ("DE", "NO", "GP", "LI"):
        status, body, _ = live.join(f"gone-{country}", country_addresses[country][2])
        assert status == 503 and body["error"] == "no_capacity", body
    status, body, _ = live.join("still-us", country_addresses["BR"][2])
    assert status == 200 and body["region"] == "us-east", body
    assert body["router"]["node"] == live.routers["us-east"].node_id
    assert all(s["username"].split(":")[1] == "us-east" for s in body["ice_servers"])
    assert live.routers["eu-north"].proc.popen.returncode == -signal.SIGKILL


def test_no_raw_client_address_anywhere(live: Cluster) -> None:
    """Runs last: every address any test sent must be absent from logs, metrics and etcd."""
    literals = {a for a in live.used if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:.]+", a)
                and a.count(".") == 3}
    assert len(literals) >= 15
    pattern = re.compile(r"(?<![\d.])(" + "|".join(map(re.escape, literals)) + r")(?![\d])")
    _, metrics = live.get("/metrics", metrics=True)
    _, targets = live.get("/v1/prometheus/targets", metrics=True)
    texts = {"metrics": metrics.decode(), "targets": targets.decode()}
    for proc in live.cluster.procs:
        texts[f"log {proc.name}"] = proc.log_tail(10_000_000) + "\n".join(proc.lines)
    for key, value in live.cluster.etcd_dump():
        texts[f"etcd {key}"] = key + value.decode(errors="replace")
    assert any("/24" in text for name, text in texts.items() if name == "log frontdoor")
    # The real nodes' logs are scanned too (routers and TURN servers).
    assert {f"log router-{r}-router-1" for r in REGIONS} <= set(texts)
    assert {f"log turn-{r}-turn-1" for r in REGIONS} <= set(texts)
    for name, text in texts.items():
        match = pattern.search(text)
        assert match is None, f"raw client address {match.group(0) if match else ''} in {name}"
