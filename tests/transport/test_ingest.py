"""The compiled ingest loop (``router.transport._fastpath.ingest``) against the mux's Python path.

Two muxes, each with a peer connected over ICE and DTLS for real, get the same script of
datagrams: good SRTP, replays, forged tags, bad lengths, SRTCP, STUN and DTLS noise, media from
an unknown address, a handler switched off and on, a peer closed mid-script. One mux sees them
one by one through ``receive_datagram``, the other in batches through ``ingest``. The handler
calls, the queued events and every counter must come out the same.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import asdict
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.transport import fastpath
from router.transport.base import BaseTransport
from router.transport.client import ClientTransport
from router.transport.events import Address
from router.transport.peer import PeerTransport
from router.transport.udp_driver import MAX_BATCH, UdpDriver
from tests.transport.wiring import CLIENT_ADDR, Network, connect, make_pair

STRANGER: Address = ("203.0.113.99", 40000)


@pytest.fixture(autouse=True)
def _built() -> None:
    if not fastpath.built():
        pytest.fail(f"make setup should have built the fast path: {fastpath.describe()}")


def _connected(seed: int) -> tuple[Network, PeerTransport, ClientTransport]:
    net, peer, client = make_pair(seed=seed)
    connect(net, peer, client)
    net.server_events.clear()
    return net, peer, client


def _rtp(seq: int, size: int, marker: bool = False) -> bytes:
    b1 = 96 | (0x80 if marker else 0)
    return struct.pack("!BBHII", 0x80, b1, seq, seq * 3000, 0x1234) + bytes(size)


def _rtcp() -> bytes:
    # A receiver report with no blocks.
    return struct.pack("!BBHI", 0x80, 201, 1, 0x4321)


Step = tuple[str, int]
steps = st.lists(
    st.tuples(
        st.sampled_from(
            ["rtp", "rtp", "rtp", "replay", "forged", "cut", "rtcp", "stranger", "stun", "dtls",
             "garbage", "long", "handler_off", "handler_on", "close"]
        ),
        st.integers(0, 1300),
    ),
    min_size=1,
    max_size=40,
)


class Side:
    """One mux with its connected peer and client, and what its handler saw."""

    def __init__(self, seed: int) -> None:
        self.net, self.peer, self.client = _connected(seed)
        self.mux = self.net.mux
        self.calls: list[tuple[str, bytes, float]] = []
        self.mux.set_rtp_handler(self.handler)
        self.sent: list[bytes] = []
        self.seq = 0

    def handler(self, peer: BaseTransport, plain: bytes, now: float) -> None:
        assert peer is self.peer
        self.calls.append(("rtp", plain, now))

    def datagram(self, kind: str, value: int) -> tuple[bytes, Address] | None:
        """The datagram this step stands for (None: a step that changes state instead)."""
        srtp = self.client.srtp
        assert srtp is not None
        if kind == "rtp" or kind == "stranger":
            self.seq += 1
            data = srtp.protect_rtp(_rtp(self.seq, value, marker=bool(value & 1)))
            assert data is not None
            self.sent.append(data)
            return data, (STRANGER if kind == "stranger" else CLIENT_ADDR)
        if kind == "replay":
            return (self.sent[value % len(self.sent)] if self.sent else b"\x80"), CLIENT_ADDR
        if kind == "forged":
            self.seq += 1
            forged = bytearray(srtp.protect_rtp(_rtp(self.seq, value)) or b"")
            forged[-1] ^= 0x01
            return bytes(forged), CLIENT_ADDR
        if kind == "cut":
            self.seq += 1
            data = srtp.protect_rtp(_rtp(self.seq, 40)) or b""
            return data[: value % (len(data) + 1)], CLIENT_ADDR
        if kind == "rtcp":
            return srtp.protect_rtcp(_rtcp()) or b"", CLIENT_ADDR
        if kind == "stun":
            return b"\x00\x01" + bytes(value % 40), CLIENT_ADDR
        if kind == "dtls":
            return b"\x16\xfe\xfd" + bytes(value % 40), CLIENT_ADDR
        if kind == "long":  # over the 1,500-byte SRTP buffer: a bad length
            return _rtp(value, 1500 + value % 100), CLIENT_ADDR
        if kind == "garbage":
            return bytes([(value * 7) & 0xFF]) + bytes(value % 30), CLIENT_ADDR
        if kind == "handler_off":
            self.mux.set_rtp_handler(None)
        elif kind == "handler_on":
            self.mux.set_rtp_handler(self.handler)
        elif kind == "close" and not self.peer.closed:
            self.mux.close_peer(self.peer, "closed by the script")
        return None

    def outcome(self) -> dict[str, Any]:
        events = []
        while (item := self.mux.next_event()) is not None:
            events.append(type(item[1]).__name__ + repr(getattr(item[1], "packet", b"")))
        srtp = self.peer.srtp
        return {
            "calls": self.calls,
            "events": events,
            "mux": asdict(self.mux.stats),
            "transport": asdict(self.peer.stats),
            "srtp": None if srtp is None else asdict(srtp.stats),
            "closed": self.peer.closed_reason,
        }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=steps, cuts=st.lists(st.integers(1, 8), min_size=1, max_size=10))
def test_ingest_equals_receive_datagram_per_datagram(script: list[Step], cuts: list[int]) -> None:
    ingest = fastpath.compiled().ingest
    reference, compiled = Side(seed=1), Side(seed=1)
    now = reference.net.now + 1.0
    batch: list[tuple[bytes, Address]] = []
    sizes = iter(cuts * 10)
    want = next(sizes)

    def flush() -> None:
        nonlocal now
        ingest(batch, compiled.mux.media_table, compiled.mux.receive_datagram, now)
        batch.clear()
        now += 0.001  # one ``now`` per batch, as the driver reads the clock once per batch

    for kind, value in script:
        ref_item = reference.datagram(kind, value)
        if ref_item is not None:
            reference.mux.receive_datagram(ref_item[0], ref_item[1], now)
        else:
            flush()  # a state change happens between batches, as signaling does
        item = compiled.datagram(kind, value)
        if item is not None:
            batch.append(item)
            if len(batch) >= want:
                flush()
                want = next(sizes, 4)
    flush()
    ref, got = reference.outcome(), compiled.outcome()
    # The two sides have their own keys, so compare plaintexts and counters, not ciphertexts.
    assert got == ref


def test_every_good_packet_reaches_the_handler_once_with_its_plaintext() -> None:
    side = Side(seed=2)
    packets = [_rtp(seq, 1100) for seq in range(1, 21)]
    srtp = side.client.srtp
    assert srtp is not None
    batch = [(srtp.protect_rtp(p) or b"", CLIENT_ADDR) for p in packets]
    fallback: list[bytes] = []

    def receive(data: bytes, addr: Address, now: float) -> None:
        fallback.append(data)
        side.mux.receive_datagram(data, addr, now)

    rtcp = srtp.protect_rtcp(_rtcp()) or b""
    fastpath.compiled().ingest(batch + batch[:5] + [(rtcp, CLIENT_ADDR)], side.mux.media_table,
                               receive, 5.0)  # fmt: skip
    assert fallback == [rtcp]  # the media never left the compiled loop; RTCP always does
    assert [plain for _, plain, _ in side.calls] == packets
    assert side.peer.srtp is not None
    assert side.peer.srtp.stats.rtp_in == 20
    assert side.peer.srtp.stats.replay_failures == 5


def test_ingest_refuses_the_wrong_shapes() -> None:
    ingest = fastpath.compiled().ingest
    side = Side(seed=3)
    with pytest.raises(TypeError):
        ingest((), side.mux.media_table, side.mux.receive_datagram, 0.0)
    with pytest.raises(TypeError):
        ingest([(b"\x80" * 20,)], side.mux.media_table, side.mux.receive_datagram, 0.0)
    with pytest.raises(TypeError):
        ingest([], side.mux.media_table, side.mux.receive_datagram)


def test_a_handler_error_propagates_and_the_batch_stops_there() -> None:
    side = Side(seed=4)
    srtp = side.client.srtp
    assert srtp is not None
    calls: list[bytes] = []

    def failing(peer: BaseTransport, plain: bytes, now: float) -> None:
        calls.append(plain)
        raise RuntimeError("handler failed")

    side.mux.set_rtp_handler(failing)
    batch = [(srtp.protect_rtp(_rtp(seq, 50)) or b"", CLIENT_ADDR) for seq in (1, 2)]
    with pytest.raises(RuntimeError, match="handler failed"):
        fastpath.compiled().ingest(batch, side.mux.media_table, side.mux.receive_datagram, 0.0)
    assert len(calls) == 1


def test_media_sources_is_the_ice_agents_own_table() -> None:
    """The compiled loop checks ``media_sources``: it must stay the agent's live table."""
    side = Side(seed=5)
    assert side.peer.media_sources is side.peer.ice.nominated
    assert CLIENT_ADDR in side.peer.media_sources
    side.net.advance()
    assert side.peer.media_sources is side.peer.ice.nominated


@pytest.mark.parametrize("fast", [True, False])
def test_the_driver_ingests_through_the_compiled_loop_only_on_the_fast_path(fast: bool) -> None:
    side = Side(seed=6)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        driver = UdpDriver(sock, side.mux, lambda: None, fast=fast)
        assert (driver._ingest is not None) is fast
        assert driver._media_table is (side.mux.media_table if fast else None)
    finally:
        sock.close()


async def test_the_driver_hands_srtp_from_a_real_socket_to_the_handler() -> None:
    side = Side(seed=7)
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    client_sock.bind(("127.0.0.1", 0))
    try:
        # The peer validated CLIENT_ADDR in the wired run; the loopback address is its alias.
        addr = client_sock.getsockname()
        # The wired run's clock started at 0 and the driver runs on Trio's: the peer's consent
        # moves to Trio's time, or its timer (run between batches) would find it lapsed.
        ice = side.peer.ice
        assert ice is not None
        ice.nominated = {a: trio.current_time() for a in ice.nominated}
        side.peer.media_sources[addr] = trio.current_time() + 1000.0
        side.mux.media_table[addr] = side.peer
        driver = UdpDriver(server, side.mux, lambda: None, fast=True)
        srtp = side.client.srtp
        assert srtp is not None
        packets = [_rtp(seq, 900) for seq in range(1, 2 * MAX_BATCH + 3)]  # three batches
        for packet in packets:
            client_sock.sendto(srtp.protect_rtp(packet) or b"", server.getsockname())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(driver.run)
            with trio.fail_after(5):
                while len(side.calls) < len(packets):
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        assert [plain for _, plain, _ in side.calls] == packets
    finally:
        server.close()
        client_sock.close()
