"""The Trio drivers over real loopback UDP sockets: a synthetic client against the router mux."""

from __future__ import annotations

import random
import socket
import struct

import pytest
import trio
import trio.testing

from router.transport import (
    ClientTransport,
    DtlsConnected,
    RtpReceived,
    TransportEvent,
    TransportMux,
)
from router.transport.base import BaseTransport
from router.transport.peer import PeerTransport
from router.transport.udp_driver import (
    DRAIN_ROUNDS,
    UdpDriver,
    client_driver,
    enlarge_socket_buffers,
    mux_driver,
)
from tests.transport.wiring import CLIENT_CERT, SERVER_CERT


def rtp(seq: int, ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 111, seq, seq * 960, ssrc) + bytes([seq & 0xFF]) * 160


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.mark.parametrize("direct", [False, True], ids=["rtp-events", "rtp-handler"])
async def test_client_and_mux_drivers_exchange_srtp(direct: bool) -> None:
    """``direct``: RTP reaches the server through ``TransportMux.set_rtp_handler`` (set before
    the peer exists, as the router's session core does) and never as an event."""
    server_sock, client_sock = udp_socket(), udp_socket()
    server_addr = server_sock.getsockname()
    mux = TransportMux()
    echo_back: list[bytes] = []
    server_seen: list[bytes] = []
    connected = trio.Event()
    all_back = trio.Event()
    client_seen: list[bytes] = []

    def on_server_rtp(peer: BaseTransport, packet: bytes, now: float) -> None:
        server_seen.append(packet)
        # A forwarder in miniature: rewrite the SSRC and send back to the same peer.
        echoed = packet[:8] + struct.pack("!I", 0xBEEF) + packet[12:]
        peer.send_rtp(echoed)
        echo_back.append(echoed)

    def on_server_event(peer: PeerTransport, event: TransportEvent) -> None:
        if isinstance(event, RtpReceived):
            assert not direct, "RTP came as an event although a handler was set"
            on_server_rtp(peer, event.packet, 0.0)

    if direct:
        mux.set_rtp_handler(on_server_rtp)
    peer = mux.create_peer(
        now=trio.current_time(),
        remote_ufrag="cliU",
        remote_password="client-password-0123456789",
        remote_fingerprint=str(CLIENT_CERT.fingerprint),
        certificate=SERVER_CERT,
    )
    client = ClientTransport(
        remote_address=server_addr,
        remote_ufrag=peer.local_ufrag,
        remote_password=peer.local_password,
        remote_fingerprint=str(SERVER_CERT.fingerprint),
        random=random.Random(5).random,
        local_ufrag="cliU",
        local_password="client-password-0123456789",
        certificate=CLIENT_CERT,
        now=trio.current_time(),
    )

    def on_client_event(event: TransportEvent) -> None:
        if isinstance(event, DtlsConnected):
            connected.set()
        elif isinstance(event, RtpReceived):
            client_seen.append(event.packet)
            if len(client_seen) == 200:
                all_back.set()

    server = mux_driver(server_sock, mux, on_server_event)
    driver = client_driver(client_sock, client, on_client_event)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.run)
            nursery.start_soon(driver.run)
            client.connect(trio.current_time())
            driver.notify()
            await connected.wait()
            for seq in range(1, 201):
                assert client.send_rtp(rtp(seq, 0xCAFE))
                if seq % 20 == 0:
                    driver.notify()
                    await trio.sleep(0.005)
            driver.notify()
            await all_back.wait()
            nursery.cancel_scope.cancel()
    assert server_seen == [rtp(s, 0xCAFE) for s in range(1, 201)]
    assert client_seen == echo_back
    assert peer.srtp_stats is not None and peer.srtp_stats.auth_failures == 0
    assert server.send_errors == 0 and driver.send_errors == 0
    server_sock.close()
    client_sock.close()


async def test_router_driver_drops_a_silent_client_after_consent_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Virtual time through the real driver: the client stops, the router's consent lapses."""
    server_sock, client_sock = udp_socket(), udp_socket()
    mux = TransportMux()
    server_events: list[TransportEvent] = []
    connected = trio.Event()
    peer = mux.create_peer(
        now=trio.current_time(),
        remote_ufrag="cliU",
        remote_password="client-password-0123456789",
        remote_fingerprint=str(CLIENT_CERT.fingerprint),
        certificate=SERVER_CERT,
    )
    client = ClientTransport(
        remote_address=server_sock.getsockname(),
        remote_ufrag=peer.local_ufrag,
        remote_password=peer.local_password,
        remote_fingerprint=str(SERVER_CERT.fingerprint),
        random=random.Random(9).random,
        local_ufrag="cliU",
        local_password="client-password-0123456789",
        certificate=CLIENT_CERT,
        now=trio.current_time(),
    )
    server = mux_driver(server_sock, mux, lambda p, e: server_events.append(e))
    driver = client_driver(
        client_sock, client, lambda e: connected.set() if isinstance(e, DtlsConnected) else None
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run)
        async with trio.open_nursery() as client_nursery:
            client_nursery.start_soon(driver.run)
            client.connect(trio.current_time())
            driver.notify()
            await connected.wait()
            await trio.sleep(12)  # consent checks keep the router happy meanwhile
            assert not peer.closed
            silent_since = trio.current_time()
            client_nursery.cancel_scope.cancel()
        while not peer.closed:
            await trio.sleep(1)
        elapsed = trio.current_time() - silent_since
        nursery.cancel_scope.cancel()
    assert 25.0 <= elapsed <= 31.0  # last check was at most one interval before silence
    assert [type(e).__name__ for e in server_events][-2:] == ["ConsentLost", "TransportClosed"]
    assert mux.peer_count == 0
    server_sock.close()
    client_sock.close()


def test_socket_buffers_enlarged() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        default = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        rcv, snd = enlarge_socket_buffers(sock, 1 << 20)
        assert rcv > default and snd >= 1 << 20
        assert rcv == sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


class _Echo:
    """A core that echoes every datagram and has no timer; ``outbox`` is shared in place."""

    def __init__(self) -> None:
        self.outbox: list[tuple[bytes, tuple[str, int]]] = []

    def receive_datagram(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        self.outbox.append((data, addr))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        raise AssertionError("the shared outbox is flushed in place")

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        raise AssertionError("no timer")


async def test_driver_reuses_its_cancel_scope_and_flushes_the_shared_outbox() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    core = _Echo()
    outbox = core.outbox
    driver = UdpDriver(server, core, lambda: None)
    client = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await client.bind(("127.0.0.1", 0))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(driver.run)
        for i in range(50):
            await client.sendto(b"ping%d" % i, server.getsockname())
            assert await client.recv(100) == b"ping%d" % i
        assert driver.waits >= 50 and driver.scopes == 1  # no scope per wakeup
        driver.notify()  # an API call: the scope fires, a new one is entered
        await client.sendto(b"again", server.getsockname())
        assert await client.recv(100) == b"again"
        assert driver.scopes == 2
        nursery.cancel_scope.cancel()
    assert core.outbox is outbox and outbox == []
    assert driver.datagrams_in == driver.datagrams_out == 51
    client.close()
    server.close()


@pytest.mark.parametrize("direct", [False, True])
async def test_input_arriving_during_a_batch_is_read_without_waiting_on_trio(
    direct: bool,
) -> None:
    """A datagram that arrives while a batch is processed is read right after it (no Trio
    wakeup): through Trio, by an extra read, at most DRAIN_ROUNDS batches in a row (an empty
    extra read ends the run quietly); with the direct wait, by its next poll()."""
    server = udp_socket()
    core = _Echo()
    feeder = udp_socket()
    target = server.getsockname()
    remaining = [3 * DRAIN_ROUNDS]
    batches = [0]

    def after_batch() -> None:
        batches[0] += 1
        if remaining[0] > 0:  # the next packet "arrives" while this batch is being processed
            remaining[0] -= 1
            feeder.sendto(b"more", target)

    driver = UdpDriver(server, core, after_batch, fast=True, direct=direct)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(driver.run)
        await trio.testing.wait_all_tasks_blocked()
        feeder.sendto(b"first", target)
        with trio.fail_after(5):
            while driver.datagrams_out < 3 * DRAIN_ROUNDS + 1:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    # Every datagram got its own batch.
    assert batches[0] == driver.datagrams_in == 3 * DRAIN_ROUNDS + 1
    if not direct:
        # One wakeup served up to DRAIN_ROUNDS of them.
        assert driver.direct is None
        assert driver.extra_rounds >= 2 * DRAIN_ROUNDS
        assert driver.waits * DRAIN_ROUNDS >= batches[0]
        assert driver.waits < batches[0]
    else:
        # No extra reads: the waits that found input at once skipped Trio's scheduler.
        assert driver.direct is not None and driver.extra_rounds == 0
        assert driver.direct.direct >= 2 * DRAIN_ROUNDS
        assert driver.direct.through_trio < batches[0] - 2 * DRAIN_ROUNDS
    feeder.close()
    server.close()


def test_rtp_handler_reaches_peers_created_before_and_after() -> None:
    mux = TransportMux()

    def make(ufrag: str) -> PeerTransport:
        return mux.create_peer(now=0.0, remote_ufrag=ufrag,
                               remote_password="client-password-0123456789",
                               remote_fingerprint=str(CLIENT_CERT.fingerprint),
                               certificate=SERVER_CERT)  # fmt: skip

    def handler(peer: BaseTransport, packet: bytes, now: float) -> None:
        raise AssertionError("not called here")

    before = make("befo")
    mux.set_rtp_handler(handler)
    after = make("aftr")
    assert before.rtp_handler is handler and after.rtp_handler is handler
    mux.set_rtp_handler(None)
    assert before.rtp_handler is None and after.rtp_handler is None
