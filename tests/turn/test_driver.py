"""The Trio drivers over real loopback sockets: UDP, TCP and TLS relaying, deny proofs, expiry,
hostile stream framing."""

from __future__ import annotations

import select
import ssl
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio.testing

from tests.turn.conftest import turn_config
from tests.turn.helpers import code
from tests.turn.netclient import NetClient
from turn.server.metrics import registry_for
from turn.server.server import TurnServer
from turn.stun import AdditionalAddressFamily, Method, parse_message

Start = Callable[..., Any]


def _addr(server: TurnServer, protocol: str) -> tuple[str, int]:
    return {"udp": server.addresses.udp, "tcp": server.addresses.tcp,
            "tls": server.addresses.tls}[protocol][0]


async def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait for ``condition`` (an event the server counted), generously for a loaded host."""
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.01)


def _nothing_pending(sock: trio.socket.SocketType) -> bool:
    """Nothing queued on ``sock`` now. Called after the server counted its refusal: a datagram
    it had sent on loopback instead would already be queued here."""
    return not select.select([sock.fileno()], [], [], 0)[0]


@pytest.mark.parametrize("protocol", ["udp", "tcp", "tls"])
async def test_relay_both_ways(protocol: str, start_server: Start, peer: Any,
                               tls_files: tuple[str, str]) -> None:
    server = await start_server(turn_config(tls_files, allow_peer=["127.0.0.0/8"]))
    client = NetClient(protocol, _addr(server, protocol))
    await client.connect()
    try:
        assert code(await client.allocate()) == 200
        peer_addr = peer.getsockname()
        assert code(await client.bind(0x4001, *peer_addr)) == 200
        await client.channel_data(0x4001, b"to-peer")
        with trio.fail_after(5):
            data, relay_addr = await peer.recvfrom(2048)
        assert data == b"to-peer" and relay_addr == client.relayed
        await peer.sendto(b"to-client!", relay_addr)
        assert await client.next_data() == b"\x40\x01\x00\x0ato-client!"
        # Send indication and a Data indication back for an unbound peer port.
        other = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await other.bind(("127.0.0.1", 0))
        await client.send_indication(*other.getsockname(), b"via-send")
        with trio.fail_after(5):
            data, _ = await other.recvfrom(2048)
        assert data == b"via-send"
        await other.sendto(b"data-ind", relay_addr)
        indication = parse_message(await client.next_data())
        assert indication.method == Method.DATA
        other.close()
        assert server.core.stats.packets_to_peers == 2
        assert server.core.stats.packets_from_peers == 2
    finally:
        await client.close()


@pytest.mark.parametrize("target", ["127.0.0.1", "0.0.0.0", "::ffff:127.0.0.1", "::1"])
async def test_denied_peers_receive_nothing(target: str, start_server: Start, peer: Any) -> None:
    server = await start_server(turn_config(relay_ip6="::1"))
    client = NetClient("udp", server.addresses.udp[0])
    await client.connect()
    port = peer.getsockname()[1]
    v6 = trio.socket.socket(trio.socket.AF_INET6, trio.socket.SOCK_DGRAM)
    await v6.bind(("::1", port))
    try:
        assert code(await client.request(Method.ALLOCATE, *_alloc_attrs())) == 200
        assert code(await client.permission(target)) == 403
        assert code(await client.bind(0x4000, target, port)) == 403
        await client.send_indication(target, port, b"leak")
        await client.channel_data(0x4000, b"leak")
        stats = server.core.stats
        await _until(lambda: sum(stats.peer_denied.values()) == 3
                     and stats.dropped["no_channel"] == 1)
        assert _nothing_pending(peer) and _nothing_pending(v6)
    finally:
        v6.close()
        await client.close()


def _alloc_attrs() -> tuple[Any, ...]:
    from turn.stun import Lifetime, RequestedTransport

    return (RequestedTransport(17), Lifetime(600), AdditionalAddressFamily(0x02))


async def test_own_listener_denied_inside_allowed_range(start_server: Start) -> None:
    server = await start_server(turn_config(allow_peer=["127.0.0.0/8"]))
    client = NetClient("udp", server.addresses.udp[0])
    await client.connect()
    try:
        await client.allocate()
        own_udp = server.addresses.udp[0]
        own_tcp = server.addresses.tcp[0]
        assert code(await client.bind(0x4000, *own_udp)) == 403
        assert code(await client.bind(0x4001, *own_tcp)) == 403
        assert code(await client.permission(own_udp[0])) == 200  # per-IP; ports checked later
        before = server.core.stats.requests.total()
        binding = b"\x00\x01\x00\x00" + b"\x21\x12\xa4\x42" + b"x" * 12
        await client.send_indication(*own_udp, binding)
        await _until(lambda: server.core.stats.peer_denied["own-endpoint"] == 3)
        assert server.core.stats.requests.total() == before
    finally:
        await client.close()


async def test_allocation_expires_on_the_core_timer(autojump_clock: trio.testing.MockClock,
                                                     nursery: trio.Nursery) -> None:
    """MockClock(autojump_threshold=0): 10 virtual minutes pass in milliseconds."""
    server: TurnServer = await nursery.start(TurnServer(turn_config()).run)
    client = NetClient("udp", server.addresses.udp[0],
                       wall=server.core.wall_offset + trio.current_time())
    await client.connect()
    assert code(await client.allocate(lifetime=600)) == 200
    await client.permission("8.8.8.8")
    alloc = next(iter(server.core.allocations.values()))
    assert len(server.pool.by_fd) == 1
    await trio.sleep(301)
    assert not alloc.permissions
    assert server.core.allocations
    await trio.sleep(300)
    assert not server.core.allocations
    assert not server.pool.by_fd
    await client.close()


@pytest.mark.parametrize(
    "hostile",
    [
        b"\x00\x01\xff\xfd\x21\x12\xa4\x42",  # STUN length 0xFFFD (not a multiple of 4)
        b"\x00\x01\xff\xff\x21\x12\xa4\x42",  # STUN length 0xFFFF
        b"\x40\x00\xff\xff" + b"x" * 100,  # ChannelData 0xFFFF, then the stream stops short
        b"\xff" * 32,  # garbage
        b"\x00\x01\x00\x08\xde\xad\xbe\xef" + b"x" * 20,  # bad cookie
    ],
)
async def test_hostile_stream_closes_only_that_connection(hostile: bytes, start_server: Start,
                                                           peer: Any) -> None:
    server = await start_server(turn_config(allow_peer=["127.0.0.0/8"]))
    good = NetClient("tcp", server.addresses.tcp[0])
    await good.connect()
    evil = await trio.open_tcp_stream(*server.addresses.tcp[0])
    try:
        assert code(await good.allocate()) == 200
        await evil.send_all(hostile)
        if hostile.startswith(b"\x40\x00\xff\xff"):
            await evil.send_eof()
        with trio.fail_after(12):
            while await evil.receive_some(1024):
                pass
        assert code(await good.bind(0x4000, *peer.getsockname())) == 200
        await good.channel_data(0x4000, b"still-works")
        with trio.fail_after(5):
            assert (await peer.recv(100)) == b"still-works"
    finally:
        await trio.aclose_forcefully(evil)
        await good.close()


async def test_tcp_disconnect_frees_allocation_and_quota(start_server: Start) -> None:
    server = await start_server(turn_config(user_quota=1))
    for _ in range(3):  # allocate-then-disconnect flood: the quota must hold and recover
        client = NetClient("tcp", server.addresses.tcp[0])
        await client.connect()
        assert code(await client.allocate()) == 200
        await client.close()
        with trio.fail_after(5):
            while server.core.allocations:
                await trio.sleep(0.01)
    assert not server.pool.by_fd


async def test_tls_below_1_2_refused(start_server: Start, tls_files: tuple[str, str]) -> None:
    server = await start_server(turn_config(tls_files))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    tcp = await trio.open_tcp_stream(*server.addresses.tls[0])
    stream = trio.SSLStream(tcp, ctx, server_hostname="127.0.0.1")
    with pytest.raises((trio.BrokenResourceError, ssl.SSLError)):
        await stream.do_handshake()
    await trio.aclose_forcefully(stream)


async def test_metrics_have_no_address_labels(start_server: Start) -> None:
    from prometheus_client import generate_latest

    server = await start_server(turn_config())
    client = NetClient("udp", server.addresses.udp[0])
    await client.connect()
    await client.allocate()
    await client.permission("10.0.0.1")
    text = generate_latest(registry_for(server.core, "eu-west")).decode()
    assert "regio_turn_allocations{region=\"eu-west\"} 1.0" in text
    assert 'regio_turn_peer_denied_total{reason="private",region="eu-west"} 1.0' in text
    assert 'regio_turn_unauthenticated_sources{region="eu-west"} 0.0' in text
    assert ('regio_turn_amplification_budget_total{reason="tracked",region="eu-west"} 1.0'
            in text)
    assert f'regio_turn_allocation_quota{{region="eu-west"}} {server.config.total_quota}.0' in text
    assert 'regio_turn_allocations_refused_total{reason="total_quota",region="eu-west"} 0.0' in text
    assert "process_cpu_seconds_total " in text
    assert "127.0.0.1" not in text
    await client.close()


async def test_small_first_allocate_answered_without_retransmission(start_server: Start) -> None:
    """A browser/aioice-sized 36-byte first Allocate, over real UDP, sent once: its 401 comes
    back at once (issue 15 #10: the 3x budget), no retransmission timeout to pay."""
    import os

    from turn.stun import Lifetime, MessageClass, Nonce, RequestedTransport, StunMessage

    server = await start_server(turn_config())
    client = NetClient("udp", server.addresses.udp[0])
    await client.connect()
    assert client.sock is not None
    try:
        first = StunMessage(Method.ALLOCATE, MessageClass.REQUEST, os.urandom(12),
                            (RequestedTransport(17), Lifetime(600))).encode()
        assert len(first) == 36
        await client.send_raw(first)  # once: never retransmitted
        challenge = await client.response()
        assert code(challenge) == 401
        nonce = challenge.get(Nonce)
        assert nonce is not None
        client.nonce = nonce.value
        assert code(await client.allocate()) == 200
        stats = server.core.stats
        assert stats.dropped["amplification_deferred"] == 0
        assert len(server.core.amplification) == 0
    finally:
        await client.close()


async def test_two_clients_of_one_node_relay_to_each_other(start_server: Start) -> None:
    server = await start_server(turn_config(allow_peer=["127.0.0.0/8"]))
    a = NetClient("udp", server.addresses.udp[0], participant="a")
    b = NetClient("udp", server.addresses.udp[0], participant="b")
    await a.connect()
    await b.connect()
    try:
        assert code(await a.allocate()) == 200 and code(await b.allocate()) == 200
        assert a.relayed is not None and b.relayed is not None
        assert code(await a.permission(b.relayed[0])) == 200
        assert code(await b.permission(a.relayed[0])) == 200
        await a.send_indication(*b.relayed, b"send a->b")
        indication = parse_message(await b.next_data())
        assert indication.method == Method.DATA
        assert code(await a.bind(0x4000, *b.relayed)) == 200
        assert code(await b.bind(0x4001, *a.relayed)) == 200
        await a.channel_data(0x4000, b"chan a->b")
        assert await b.next_data() == b"\x40\x01\x00\x09chan a->b"
        await b.channel_data(0x4001, b"chan b->a")
        assert await a.next_data() == b"\x40\x00\x00\x09chan b->a"
        assert server.core.stats.packets_from_peers == 3
    finally:
        await a.close()
        await b.close()


async def test_free_relay_range_port_is_denied(start_server: Start) -> None:
    """A real listener on a relay-range port that is not a live relay (another process took
    it) receives nothing: Send is dropped and counted, ChannelBind is 403."""
    blocker = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await blocker.bind(("127.0.0.3", 52999))
    server = await start_server(turn_config(allow_peer=["127.0.0.0/8"]))
    client = NetClient("udp", server.addresses.udp[0])
    await client.connect()
    try:
        assert code(await client.allocate()) == 200
        assert code(await client.permission("127.0.0.3")) == 200  # per IP: allowed
        await client.send_indication("127.0.0.3", 52999, b"probe")
        assert code(await client.bind(0x4000, "127.0.0.3", 52999)) == 403
        await client.channel_data(0x4000, b"probe")
        stats = server.core.stats
        await _until(lambda: stats.peer_denied["own-endpoint"] == 2
                     and stats.dropped["no_channel"] == 1)
        assert _nothing_pending(blocker)
    finally:
        blocker.close()
        await client.close()


@pytest.mark.parametrize("factor, retransmitted", [(3, 0), (1, 5)])
async def test_first_contact_probe_sees_the_budget(start_server: Start, factor: int,
                                                   retransmitted: int) -> None:
    """The bench's browser-style first-contact probe over real UDP: with the default 3x budget
    no first Allocate waits for a retransmission; at 1x every one does (issue 15 #10)."""
    from benchmarks.turn_load.first_contact import measure_first_contact
    from tests.turn.conftest import REGION, SECRET

    server = await start_server(turn_config(udp_amplification_factor=factor))
    host, port = server.addresses.udp[0]
    first = await trio.to_thread.run_sync(lambda: measure_first_contact(
        host, port, SECRET, realm=None, region=REGION, clients=5))
    assert first.clients == 5 and first.retransmitted == retransmitted
    assert server.core.stats.dropped["amplification_deferred"] == retransmitted
