"""Client and router cores wired together in virtual time: ICE, DTLS, SRTP end to end."""

from __future__ import annotations

import struct

import pytest

from router.transport import (
    ConsentLost,
    DtlsCertificate,
    DtlsConnected,
    DtlsRole,
    DtlsState,
    IceConnected,
    RtcpReceived,
    RtpReceived,
    TransportClosed,
    TransportConfig,
)
from tests.transport.wiring import (
    CLIENT_ADDR,
    SERVER_ADDR,
    SERVER_CERT,
    connect,
    make_pair,
)
from turn.stun import MessageClass, Method, StunMessage, UseCandidate, Username, short_term_key


def rtp(seq: int, ssrc: int = 0xCAFE) -> bytes:
    return struct.pack("!BBHII", 0x80, 111, seq & 0xFFFF, seq * 960, ssrc) + seq.to_bytes(4, "big")


def kinds(events: list[object]) -> list[str]:
    return [type(e).__name__ for e in events]


@pytest.mark.parametrize("server_role", [DtlsRole.SERVER, DtlsRole.CLIENT])
@pytest.mark.parametrize("profile", ["SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_SHA1_80"])
def test_handshake_and_rtp_both_directions(server_role: DtlsRole, profile: str) -> None:
    config = TransportConfig(srtp_profiles=(profile,))
    net, peer, client = make_pair(config=config, server_role=server_role)
    connect(net, peer, client)
    assert kinds([e for _, e in net.server_events]) == ["IceConnected", "DtlsConnected"]
    assert net.server_events[1][1] == DtlsConnected(profile)
    assert net.client_events[CLIENT_ADDR] == [IceConnected(SERVER_ADDR), DtlsConnected(profile)]
    assert peer.selected_address == CLIENT_ADDR and peer.can_send(CLIENT_ADDR)
    net.server_events.clear()
    net.client_events[CLIENT_ADDR].clear()

    for seq in range(1, 101):
        assert client.send_rtp(rtp(seq))
        if seq % 10 == 0:
            net.settle()
    assert client.send_rtcp(struct.pack("!BBHI", 0x80, 201, 1, 0xCAFE))
    net.settle()
    got = [e for p, e in net.server_events if p is peer]
    assert [e.packet for e in got if isinstance(e, RtpReceived)] == [rtp(s) for s in range(1, 101)]
    assert isinstance(got[-1], RtcpReceived)

    for seq in range(1000, 1100):
        assert peer.send_rtp(rtp(seq, ssrc=0xBEEF))
    net.settle()
    received = [e.packet for e in net.client_events[CLIENT_ADDR] if isinstance(e, RtpReceived)]
    assert received == [rtp(s, ssrc=0xBEEF) for s in range(1000, 1100)]


def test_gcm_preferred_when_offered() -> None:
    net, peer, client = make_pair()
    connect(net, peer, client)
    assert peer.srtp is not None and peer.srtp.profile.name == "SRTP_AEAD_AES_128_GCM"


@pytest.mark.parametrize("server_role", [DtlsRole.SERVER, DtlsRole.CLIENT])
def test_dtls_retransmits_through_lost_flights(server_role: DtlsRole) -> None:
    net, peer, client = make_pair(server_role=server_role)
    dropped: dict[int, int] = {}

    def drop_first_of_each_flight(data: bytes, src: object, dst: object) -> bool:
        # Drop the first two copies of every distinct DTLS datagram (by length and content type).
        if not 20 <= data[0] <= 63:
            return False
        key = hash((src, len(data)))
        dropped[key] = dropped.get(key, 0) + 1
        return dropped[key] <= 2

    net.drop = drop_first_of_each_flight
    connect(net, peer, client)
    assert peer.dtls.retransmissions + client.dtls.retransmissions >= 4
    assert net.now >= 3.0  # two timeouts of 1 s then 2 s at least
    net.drop = None
    assert client.send_rtp(rtp(1))
    net.settle()
    assert any(isinstance(e, RtpReceived) for _, e in net.server_events)


def test_server_final_flight_lost_is_resent_when_client_retransmits() -> None:
    net, peer, client = make_pair()
    sent_final = []

    def drop_server_final(data: bytes, src: object, dst: object) -> bool:
        if src == SERVER_ADDR and 20 <= data[0] <= 63 and peer.dtls.state is DtlsState.CONNECTED:
            sent_final.append(data)
            return len(sent_final) == 1
        return False

    net.drop = drop_server_final
    connect(net, peer, client)
    assert len(sent_final) >= 2 and client.dtls.retransmissions >= 1


def test_handshake_gives_up_when_everything_is_lost() -> None:
    config = TransportConfig(connect_timeout=20.0)
    net, peer, client = make_pair(config=config)
    net.drop = lambda data, src, dst: 20 <= data[0] <= 63
    client.connect(net.now)
    net.run_until(lambda: client.closed and peer.closed, limit=30)
    assert peer.srtp is None and client.srtp is None
    assert peer.closed_reason == "ICE and DTLS did not complete in time"


@pytest.mark.parametrize("wrong_side", ["server", "client"])
def test_wrong_fingerprint_closes_without_keys(wrong_side: str) -> None:
    other = str(DtlsCertificate.generate().fingerprint)
    if wrong_side == "server":
        net, peer, client = make_pair(server_expects=other)
    else:
        net, peer, client = make_pair(client_profiles_fingerprint=other)
    client.connect(net.now)
    net.run_until(lambda: peer.closed or client.closed)
    net.settle()
    checked = peer if wrong_side == "server" else client
    assert checked.srtp is None and checked.dtls.srtp_keys is None
    assert checked.closed_reason == "DTLS certificate does not match the SDP fingerprint"
    events = (
        [e for _, e in net.server_events]
        if wrong_side == "server"
        else net.client_events[CLIENT_ADDR]
    )
    assert not any(isinstance(e, DtlsConnected) for e in events)
    assert isinstance(events[-1], TransportClosed)
    # The other side hears close_notify and closes too.
    assert peer.closed and client.closed
    assert not peer.send_rtp(rtp(1)) and not client.send_rtp(rtp(1))


def test_client_hello_from_unvalidated_address_is_ignored() -> None:
    net, peer, client = make_pair()
    # An attacker who knows nothing but the port sends a ClientHello first.
    from router.transport.dtls import DtlsCore

    attacker = DtlsCore(
        DtlsCertificate.generate(), role=DtlsRole.CLIENT, remote_fingerprint=SERVER_CERT.fingerprint
    )
    attacker.start(0.0)
    (hello,) = attacker.datagrams_to_send()
    evil = ("192.0.2.66", 4444)
    assert net.mux.receive_datagram(hello, evil, 0.0) is None
    assert net.mux.stats.dtls_unknown_address == 1
    # Even delivered straight to the peer (bypassing the mux) it is dropped.
    peer.receive_datagram(hello, evil, 0.0)
    assert peer.stats.dropped_unvalidated == 1
    assert peer.dtls.state is DtlsState.NEW
    assert net.mux.datagrams_to_send(0.0) == []
    # The real client still connects, and the attacker's address stays unvalidated afterwards.
    connect(net, peer, client)
    peer.receive_datagram(hello, evil, net.now)
    assert peer.stats.dropped_unvalidated == 2 and peer.srtp is not None


def test_bad_stun_gets_no_answer_through_the_mux() -> None:
    net, peer, _client = make_pair()
    username = Username(f"{peer.local_ufrag}:cliU")
    forged = StunMessage(
        Method.BINDING, MessageClass.REQUEST, b"f" * 12, (username, UseCandidate())
    ).encode(integrity_key=short_term_key("not-the-password-0123456"), fingerprint=True)
    assert net.mux.receive_datagram(forged, CLIENT_ADDR, 0.0) is peer
    assert net.mux.datagrams_to_send(0.0) == []
    assert peer.ice.stats.bad_integrity == 1 and not peer.ice.nominated
    unknown = StunMessage(
        Method.BINDING, MessageClass.REQUEST, b"u" * 12, (Username("nobody:cliU"),)
    ).encode(integrity_key=short_term_key(peer.local_password), fingerprint=True)
    assert net.mux.receive_datagram(unknown, CLIENT_ADDR, 0.0) is None
    assert net.mux.stats.stun_unknown_username == 1
    assert net.mux.datagrams_to_send(0.0) == []
    assert peer.ice.stats.answered == 0


def test_replayed_and_tampered_srtp_dropped_and_counted_separately() -> None:
    net, peer, client = make_pair()
    connect(net, peer, client)
    client.send_rtp(rtp(1))
    ((protected, _),) = client.datagrams_to_send(net.now)
    net.mux.receive_datagram(protected, CLIENT_ADDR, net.now)
    net.mux.receive_datagram(protected, CLIENT_ADDR, net.now)  # replay
    client.send_rtp(rtp(2))
    ((second, _),) = client.datagrams_to_send(net.now)
    tampered = bytearray(second)
    tampered[20] ^= 0x40
    net.mux.receive_datagram(bytes(tampered), CLIENT_ADDR, net.now)
    net.collect()
    received = [e for _, e in net.server_events if isinstance(e, RtpReceived)]
    assert [e.packet for e in received] == [rtp(1)]
    stats = peer.srtp_stats
    assert stats is not None
    assert stats.replay_failures == 1 and stats.auth_failures == 1 and stats.rtp_in == 1


def test_srtp_from_unknown_address_dropped_by_mux() -> None:
    net, peer, client = make_pair()
    connect(net, peer, client)
    client.send_rtp(rtp(1))
    ((protected, _),) = client.datagrams_to_send(net.now)
    assert net.mux.receive_datagram(protected, ("192.0.2.9", 9), net.now) is None
    assert net.mux.stats.rtp_unknown_address == 1


def test_consent_lapse_stops_sending_and_closes() -> None:
    net, peer, client = make_pair()
    connect(net, peer, client)
    start = net.now
    # The client vanishes: its consent checks stop arriving.
    net.clients.clear()
    net.run_until(lambda: peer.closed, limit=40)
    assert peer.ice.consent_lost
    lost_at = net.now
    assert 30.0 <= lost_at - start <= 31.0
    events = [e for _, e in net.server_events]
    assert isinstance(events[-2], ConsentLost) and isinstance(events[-1], TransportClosed)
    assert not peer.can_send(CLIENT_ADDR)
    assert not peer.send_rtp(rtp(5)) and peer.stats.send_refused == 1
    assert net.mux.peer_count == 0 and net.mux.peer_for_address(CLIENT_ADDR) is None


def test_consent_kept_by_client_checks() -> None:
    net, peer, client = make_pair()
    connect(net, peer, client)
    start = net.now
    net.run_until(lambda: net.now - start > 120.0, limit=200)
    assert not peer.closed and peer.can_send(CLIENT_ADDR) and client.can_send()
    # About one check per 5 s.
    assert 20 <= peer.ice.stats.answered <= 32


def test_client_loses_consent_when_router_goes_silent() -> None:
    net, peer, client = make_pair()
    connect(net, peer, client)
    net.mux.close_peer(peer, "router gone")
    net.settle()
    assert client.closed  # close_notify reached the client
    net2, peer2, client2 = make_pair()
    connect(net2, peer2, client2)
    net2.drop = lambda data, src, dst: src == SERVER_ADDR
    net2.run_until(lambda: any(isinstance(e, ConsentLost) for e in net2.client_events[CLIENT_ADDR]))
    assert not client2.can_send() and not client2.send_rtp(rtp(1))


def test_close_notify_closes_the_router_side() -> None:
    net, peer, client = make_pair()
    connect(net, peer, client)
    client.close()
    net.settle()
    assert peer.closed_reason == "DTLS close_notify from peer"
    assert net.mux.peer_count == 0


def test_address_change_by_new_nomination() -> None:
    net, peer, client = make_pair()
    connect(net, peer, client)
    new_addr = ("203.0.113.99", 40000)
    net.clients = {new_addr: client}
    net.client_events[new_addr] = []
    # The client's next consent check carries no USE-CANDIDATE; a renomination does.
    client.ice._send_check(net.now, nominating=True)
    client.handle_timer(net.now)
    net.settle()
    assert peer.selected_address == new_addr
    assert IceConnected(new_addr) in [e for _, e in net.server_events]
    assert net.mux.peer_for_address(new_addr) is peer
    assert peer.send_rtp(rtp(1))
    assert net.mux.datagrams_to_send(net.now)[0][1] == new_addr
