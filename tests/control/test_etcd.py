"""The Trio adapter against real etcd: operations, several endpoints, TLS with client certs."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from control.etcd import (
    Compare,
    EtcdClient,
    EtcdConfig,
    EtcdEndpoint,
    EtcdError,
    EtcdUnavailable,
    Get,
    Put,
    WatchBatch,
    WatchCompacted,
)
from control.localetcd import LocalEtcd, TlsFiles, free_ports

from .certs import make_pki


def test_endpoint_parsing() -> None:
    assert EtcdEndpoint.parse("127.0.0.1:2379") == EtcdEndpoint("127.0.0.1", 2379, False)
    assert EtcdEndpoint.parse("https://etcd.example:2380").secure
    config = EtcdConfig.from_urls("http://a:1, http://b:2")
    assert [e.url for e in config.endpoints] == ["http://a:1", "http://b:2"]
    for bad in ("ftp://a:1", "http://a:99999", "http://a:1/path", ""):
        with pytest.raises(ValueError):
            EtcdConfig.from_urls(bad)


async def test_kv_txn_lease_watch(client: EtcdClient) -> None:
    rev = await client.put("/t/a", b"1")
    lease = await client.grant(5)
    won = await client.txn([Compare("/t/b", "version", "==", 0)], [Put("/t/b", b"2", lease)])
    lost = await client.txn([Compare("/t/b", "version", "==", 0)], [Put("/t/b", b"3")],
                            [Get("/t/b")])
    assert won.succeeded and not lost.succeeded
    assert lost.ranges[0][0].value == b"2" and lost.ranges[0][0].lease == lease
    assert (await client.txn([Compare("/t/b", "lease", "==", lease)])).succeeded
    assert await client.keepalive(lease) > 0
    revision, kvs = await client.get_prefix("/t/")
    assert [kv.key for kv in kvs] == ["/t/a", "/t/b"] and revision == won.revision
    async with client.watch("/t/", start_revision=rev) as items:
        with trio.fail_after(5):
            first = await items.receive()
    assert isinstance(first, WatchBatch) and [e.kv.key for e in first.events] == ["/t/a", "/t/b"]
    await client.revoke(lease)
    assert await client.get("/t/b") is None
    assert await client.keepalive(lease) == 0
    await client.put("/t/c", b"x")
    await client.compact(revision + 1)
    async with client.watch("/t/", start_revision=rev) as items:
        with trio.fail_after(5):
            item = await items.receive()
    assert isinstance(item, WatchCompacted) and item.compact_revision >= revision + 1


async def test_unreachable_endpoints_raise_unavailable() -> None:
    ports = free_ports(2)
    client = EtcdClient(EtcdConfig.from_urls([f"http://127.0.0.1:{p}" for p in ports],
                                             timeout=0.5))
    try:
        with pytest.raises(EtcdUnavailable, match="unreachable"):
            await client.get("/x")
    finally:
        client.close()


async def test_fails_over_between_endpoints(etcd: LocalEtcd) -> None:
    dead = free_ports(1)[0]
    config = EtcdConfig.from_urls([f"http://127.0.0.1:{dead}", etcd.urls], timeout=0.5)
    async with EtcdClient(config) as client:
        await client.put("/f", b"1")
        kv = await client.get("/f")
        assert kv is not None and kv.value == b"1"


async def test_mutual_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    cluster = LocalEtcd(1, base_dir=tmp_path / "etcd",
                        tls=TlsFiles(pki.ca_cert, pki.server_cert, pki.server_key))
    await cluster.start(client_cert=pki.client_cert, client_key=pki.client_key)
    try:
        assert cluster.urls.startswith("https://")
        good = EtcdClient(cluster.config(client_cert=pki.client_cert,
                                         client_key=pki.client_key))
        await good.put("/tls", b"ok")
        kv = await good.get("/tls")
        assert kv is not None and kv.value == b"ok"
        good.close()
        # No client certificate: refused by etcd.
        anonymous = EtcdClient(cluster.config(timeout=1.0))
        with pytest.raises(EtcdError):
            await anonymous.get("/tls")
        anonymous.close()
        # A server certificate from a CA we do not trust: refused by us.
        wrong = EtcdClient(EtcdConfig(cluster.config().endpoints, ca_cert=pki.other_ca_cert,
                                      client_cert=pki.client_cert, client_key=pki.client_key,
                                      timeout=1.0))
        with pytest.raises(EtcdUnavailable):
            await wrong.get("/tls")
        wrong.close()
    finally:
        cluster.stop()
