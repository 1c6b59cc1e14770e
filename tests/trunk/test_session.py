"""Two trunk session cores wired in one process (virtual time): mutual authentication and its
refusals, the control stream, SRTP keys and rotation, spoofed and replayed media."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

from router.trunk.messages import Subscribe
from router.trunk.session import TrunkClosed, TrunkConfig, TrunkControl, TrunkRefused, TrunkUp
from tests.trunk.helpers import B_ADDR, Wire, identities


def rtp(seq: int, payload: bytes, ssrc: int = 0x1234) -> bytes:
    return struct.pack("!BBHII", 0x80, 111, seq, seq * 960, ssrc) + payload


def test_trunk_comes_up_and_carries_control_and_media(tmp_path: Path) -> None:
    ids = identities(tmp_path, "rA", "rB")
    wire = Wire(ids["rA"], ids["rB"])
    wire.settle()
    assert wire.client_events == [TrunkUp("rB", "eu-north", "EEA")]
    assert wire.server_events == [TrunkUp("rA", "eu-west", "EEA")]
    assert wire.server is not None and wire.server.peer_node == "rA"
    wire.client.send(Subscribe("room1", "t1", 77), wire.now)
    wire.settle()
    assert wire.server_events[-1] == TrunkControl(Subscribe("room1", "t1", 77))
    out: list[tuple[bytes, tuple[str, int]]] = []
    sent = [rtp(i, bytes([i]) * 100) for i in range(5)]
    assert wire.client.protect_rtp_batch(sent, out, B_ADDR) == 5
    got = [wire.server.unprotect(data, rtcp=False) for data, _ in out]
    assert got == sent
    # a replay of an authentic packet and a forged one are refused and counted
    assert wire.server.unprotect(out[0][0], rtcp=False) is None
    forged = bytearray(out[1][0])
    forged[2:4] = struct.pack("!H", 99)  # a fresh index, so only the tag can refuse it
    assert wire.server.unprotect(bytes(forged), rtcp=False) is None
    assert wire.server.media.replay_failures == 1
    assert wire.server.media.auth_failures == 1
    assert wire.server.media.rtp_in == 5


def test_keys_rotate_without_losing_packets(tmp_path: Path) -> None:
    ids = identities(tmp_path, "rA", "rB")
    wire = Wire(ids["rA"], ids["rB"], config=TrunkConfig(key_lifetime=5.0, key_overlap=2.0))
    wire.settle()
    assert wire.server is not None
    out: list[tuple[bytes, tuple[str, int]]] = []
    wire.client.protect_rtp_batch([rtp(1, b"old")], out, B_ADDR)
    wire.advance(6.0)  # the client offered a new key, the server acknowledged it
    assert wire.client.media.rekeys_sent == 2 and wire.server.media.rekeys_received == 2
    wire.client.protect_rtp_batch([rtp(2, b"new")], out, B_ADDR)
    # the old-key packet arrives late, inside the overlap: still accepted
    assert wire.server.unprotect(out[1][0], rtcp=False) == rtp(2, b"new")
    assert wire.server.unprotect(out[0][0], rtcp=False) == rtp(1, b"old")
    wire.advance(3.0)  # overlap over: the previous key is gone
    assert len(wire.server._inbound) == 1
    assert all(isinstance(e, TrunkUp) for e in wire.server_events)


def test_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    ids = identities(tmp_path, "rA", "rB")
    rogue = identities(tmp_path, "rA", ca_dir="rogue")["rA"]
    # the rogue trusts the real CA (so it reaches the server's check) but its own certificate
    # comes from another CA
    wire = Wire(replace(rogue, ca=ids["rB"].ca), ids["rB"])
    wire.settle()
    refused = [e for e in wire.server_events if isinstance(e, TrunkRefused)]
    assert [e.reason for e in refused] == ["not_cluster_ca"]
    assert isinstance(wire.client_events[0], TrunkClosed)
    assert wire.server is not None and wire.server.closed and wire.client.closed


def test_certificate_naming_another_node_is_refused(tmp_path: Path) -> None:
    ids = identities(tmp_path, "rA", "rB", "rC")
    wire = Wire(ids["rA"], ids["rC"])  # the client wanted rB but reached rC
    wire.settle()
    refused = [e for e in wire.client_events if isinstance(e, TrunkRefused)]
    assert refused and refused[0].reason == "wrong_node"


def test_unregistered_router_is_refused(tmp_path: Path) -> None:
    ids = identities(tmp_path, "rA", "rB")
    wire = Wire(ids["rA"], ids["rB"], registered=lambda node: node != "rA")
    wire.settle()
    refused = [e for e in wire.server_events if isinstance(e, TrunkRefused)]
    assert refused and refused[0].reason == "unregistered"


def test_malformed_and_out_of_order_messages_close_the_trunk(tmp_path: Path) -> None:
    ids = identities(tmp_path, "rA", "rB")
    for bad in (b"\x00\x00\x00\x03abc",
                b'\x00\x00\x00\x2d{"t":"withdraw","n":9,"room":"r","track":"t1"}'):
        wire = Wire(ids["rA"], ids["rB"])
        wire.settle()
        assert wire.client._stream is not None
        wire.client.conn.send_stream_data(wire.client._stream, bad)
        wire.settle()
        closed = [e for e in wire.server_events if isinstance(e, TrunkClosed)]
        assert closed and closed[0].reason.startswith("protocol error"), wire.server_events
        assert any(isinstance(e, TrunkClosed) for e in wire.client_events)


def test_a_silent_peer_times_out(tmp_path: Path) -> None:
    ids = identities(tmp_path, "rA", "rB")
    wire = Wire(ids["rA"], ids["rB"], config=TrunkConfig(idle_timeout=3.0, keepalive=1.0))
    wire.settle()
    wire.advance(10.0)  # keepalives keep it up
    assert wire.client.established
    wire.drop = lambda data, direction: True
    wire.advance(10.0)
    assert wire.client.closed and isinstance(wire.client_events[-1], TrunkClosed)


def test_a_node_certificate_covers_its_workers_only(tmp_path: Path) -> None:
    ids = identities(tmp_path, "rA", "rB")
    wire = Wire(ids["rA"], ids["rB"], client_node="rA-w2", server_node="rB-w1")
    wire.settle()
    assert wire.client_events == [TrunkUp("rB-w1", "eu-north", "EEA")]
    assert wire.server_events == [TrunkUp("rA-w2", "eu-west", "EEA")]
    for client_node, server_node in (("rA", "rB-x1"), ("rAx", "rB")):
        wire = Wire(ids["rA"], ids["rB"], client_node=client_node, server_node=server_node)
        wire.settle()
        refused = [e for e in wire.client_events + wire.server_events
                   if isinstance(e, TrunkRefused)]
        assert refused and refused[0].reason == "wrong_node"
