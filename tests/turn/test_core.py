"""The sans-IO core with virtual time: allocation lifecycle, auth matrix, quotas, expiry."""

from __future__ import annotations

import base64
import hmac
import ipaddress

import pytest

from tests.turn.helpers import (
    REGION,
    SECRET,
    SERVER,
    WALL,
    Client,
    code,
    make_core,
    tid,
)
from turn.server.allocation import FiveTuple
from turn.server.auth import mint_rest_credentials, rest_password
from turn.server.core import ToClient, ToPeer
from turn.stun import (
    TRANSPORT_TCP,
    AdditionalAddressFamily,
    DontFragment,
    ErrorCode,
    Lifetime,
    MessageClass,
    Method,
    Nonce,
    RawAttribute,
    Realm,
    RequestedAddressFamily,
    RequestedTransport,
    Software,
    StunMessage,
    UnknownAttributes,
    Username,
    XorRelayedAddress,
    parse_message,
)


def ft(port: int = 40000, ip: str = "203.0.113.5", proto: str = "udp") -> FiveTuple:
    return FiveTuple(proto, (ip, port), SERVER)


def test_challenge_then_allocate() -> None:
    core, _ = make_core()
    c = Client(core, ft())
    challenge = c.challenge()
    assert code(challenge) == 401
    assert c.nonce and len(c.nonce) == 8
    response = c.allocate()
    assert code(response) == 200
    assert response is not None
    relayed = response.get(XorRelayedAddress)
    assert relayed is not None and str(relayed.address) == "198.51.100.7"
    lifetime = response.get(Lifetime)
    assert lifetime is not None and lifetime.seconds == 600
    response.verify_integrity(c.key)
    assert response.has_fingerprint
    assert response.get(Software) is not None
    assert len(core.allocations) == 1


def test_password_is_coturns_rest_formula() -> None:
    # base64(HMAC-SHA1(secret, username)), as coturn's use-auth-secret computes it.
    digest = hmac.digest(b"north", b"1700000000:eu-west:alice", "sha1")
    assert rest_password("north", "1700000000:eu-west:alice") == base64.b64encode(
        digest).decode()
    user, password = mint_rest_credentials("north", "eu-west", "bob", 60, 1000.0)
    assert user == "1060:eu-west:bob" and password == rest_password("north", user)


def test_lifetime_capped_and_refresh_zero_deletes() -> None:
    core, alloc = make_core()
    c = Client(core, ft())
    response = c.allocate(Lifetime(99999))
    assert response is not None and response.get(Lifetime) == Lifetime(3600)
    refreshed = c.request(Method.REFRESH, Lifetime(1200))
    assert refreshed is not None and refreshed.get(Lifetime) == Lifetime(1200)
    assert code(c.request(Method.REFRESH, Lifetime(0))) == 200
    assert not core.allocations
    assert len(alloc.ports) == 10
    assert code(c.request(Method.REFRESH)) == 437


def test_second_allocate_is_437_but_retransmission_is_answered() -> None:
    core, _ = make_core()
    c = Client(core, ft())
    c.challenge()
    request = StunMessage(Method.ALLOCATE, MessageClass.REQUEST, tid(), (
        RequestedTransport(17), Username(c.username), Realm("regio"), Nonce(c.nonce),
    )).encode(integrity_key=c.key, fingerprint=True)
    first = c.raw(request)
    assert code(parse_message(first[0])) == 200
    assert c.raw(request) == first  # retransmission: the cached answer
    assert code(c.allocate()) == 437


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("missing_integrity", 401),
        ("unissued_nonce", 438),
        ("wrong_realm", 401),
        ("wrong_region", 401),
        ("expired", 401),
        ("wrong_password", 401),
        ("no_nonce_attribute", 400),
        ("unbound_username", 401),
    ],
)
def test_forged_credentials(kind: str, expected: int) -> None:
    core, _ = make_core()
    if kind == "wrong_region":
        c = Client(core, ft(), region="us-east")
    elif kind == "expired":
        c = Client(core, ft(), ttl=-10)
    elif kind == "wrong_password":
        c = Client(core, ft(), secret="guessed")
    elif kind == "wrong_realm":
        c = Client(core, ft(), realm="other")
    else:
        c = Client(core, ft())
    c.challenge()
    if kind == "missing_integrity":
        msg = StunMessage(Method.ALLOCATE, MessageClass.REQUEST, tid(),
                          (RequestedTransport(17), Username(c.username)))
        out = c.raw(msg.encode())
        response = parse_message(out[-1])
    elif kind == "unissued_nonce":
        response = c.request(Method.ALLOCATE, RequestedTransport(17), nonce="AAAAAAAA")
    elif kind == "no_nonce_attribute":
        msg = StunMessage(Method.ALLOCATE, MessageClass.REQUEST, tid(),
                          (RequestedTransport(17), Username(c.username), Realm("regio")))
        response = parse_message(c.raw(msg.encode(integrity_key=c.key))[-1])
    elif kind == "unbound_username":
        c.username = f"{int(WALL + 600)}:alice"
        c.password = rest_password(SECRET, c.username)
        response = c.allocate()
    else:
        response = c.allocate()
    assert code(response) == expected
    assert not core.allocations
    if expected in (401, 438):
        assert response is not None and response.get(Nonce) is not None


def test_unbound_username_accepted_only_with_flag() -> None:
    core, _ = make_core(accept_unbound_rest_usernames=True)
    c = Client(core, ft())
    c.username = f"{int(WALL + 600)}:alice"
    c.password = rest_password(SECRET, c.username)
    assert code(c.allocate()) == 200


def test_other_username_on_existing_allocation_is_441() -> None:
    core, _ = make_core()
    five = ft()
    assert code(Client(core, five).allocate()) == 200
    intruder = Client(core, five, participant="mallory")
    assert code(intruder.request(Method.REFRESH)) == 441
    assert code(intruder.permission("8.8.8.8")) == 441
    assert code(intruder.allocate()) == 441


def test_stale_nonce_gets_438_with_fresh_nonce() -> None:
    core, _ = make_core()
    c = Client(core, ft())
    assert code(c.allocate(Lifetime(3600))) == 200
    old = c.nonce
    c.now = 700.0
    core.handle_timer(c.now)
    response = c.request(Method.REFRESH)
    assert code(response) == 438
    assert c.nonce != old
    assert code(c.request(Method.REFRESH)) == 200


def test_rotation_accepts_every_current_secret() -> None:
    core, _ = make_core()
    core.auth.secrets = lambda: ["new-secret", SECRET]
    assert code(Client(core, ft(1), secret=SECRET).allocate()) == 200
    assert code(Client(core, ft(2), secret="new-secret").allocate()) == 200
    core.auth.secrets = lambda: ["new-secret"]
    assert code(Client(core, ft(3), secret=SECRET).allocate()) == 401


def test_failed_auth_is_rate_limited_per_24() -> None:
    core, _ = make_core(auth_fail_burst=3, auth_fail_rate=0.1)
    for port in range(3):
        c = Client(core, ft(41000 + port, ip=f"203.0.113.{port + 10}"), secret="bad")
        assert code(c.allocate()) == 401
    blocked = Client(core, ft(42000, ip="203.0.113.99"), secret="bad")
    blocked.nonce = "AAAAAAAA"
    assert blocked.allocate() is None
    other_net = Client(core, ft(42000, ip="198.18.0.1"))
    assert code(other_net.allocate()) == 200
    assert core.stats.dropped["auth_rate_limited"] >= 1


def test_user_quota_and_recovery() -> None:
    core, _ = make_core(user_quota=2)
    clients = [Client(core, ft(43000 + i)) for i in range(3)]
    assert [code(c.allocate()) for c in clients] == [200, 200, 486]
    assert core.stats.refused_allocations == {"user_quota": 1}
    assert code(Client(core, ft(44000), participant="bob").allocate()) == 200
    assert code(clients[0].request(Method.REFRESH, Lifetime(0))) == 200
    assert code(clients[2].allocate()) == 200


def test_total_quota_is_508() -> None:
    core, _ = make_core(total_quota=1)
    assert code(Client(core, ft(1)).allocate()) == 200
    assert code(Client(core, ft(2), participant="b").allocate()) == 508
    assert core.stats.refused_allocations == {"total_quota": 1}


def test_port_exhaustion_508_refresh_still_works_then_recovers() -> None:
    core, allocator = make_core()
    allocator.ports = [50000]
    first = Client(core, ft(1))
    assert code(first.allocate()) == 200
    second = Client(core, ft(2), participant="b")
    assert code(second.allocate()) == 508
    assert core.stats.refused_allocations == {"relay_ports": 1}
    assert code(first.request(Method.REFRESH)) == 200
    assert code(first.request(Method.REFRESH, Lifetime(0))) == 200
    assert code(second.allocate()) == 200


def test_draining_refuses_new_allocations_only() -> None:
    core, _ = make_core()
    c = Client(core, ft(1))
    assert code(c.allocate()) == 200
    core.set_draining()
    response = Client(core, ft(2), participant="b").allocate()
    assert code(response) == 508
    assert code(c.request(Method.REFRESH)) == 200
    assert code(c.permission("8.8.8.8")) == 200


def test_unknown_attributes_420_and_dont_fragment() -> None:
    core, _ = make_core()
    c = Client(core, ft())
    response = c.allocate(RawAttribute(0x7F01, b"abcd"))
    assert code(response) == 420
    assert response is not None
    assert response.get(UnknownAttributes) == UnknownAttributes((0x7F01,))
    assert code(c.allocate(DontFragment())) == 420


def test_transport_and_family_errors() -> None:
    core, allocator = make_core()
    c = Client(core, ft())
    assert code(c.request(Method.ALLOCATE, RequestedTransport(TRANSPORT_TCP))) == 442
    assert code(c.request(Method.ALLOCATE)) == 400
    assert code(c.allocate(RequestedAddressFamily(0x05))) == 440
    allocator.fams = frozenset({4})
    assert code(c.allocate(RequestedAddressFamily(0x02))) == 440


def test_dual_allocation() -> None:
    core, _ = make_core()
    c = Client(core, ft())
    response = c.allocate(AdditionalAddressFamily(0x02))
    assert code(response) == 200 and response is not None
    relayed = response.get_all(XorRelayedAddress)
    assert {a.address.version for a in relayed} == {4, 6}
    assert code(c.permission("2001:4860::1")) == 200


def test_channel_relay_both_ways_and_data_indication() -> None:
    core, _ = make_core()
    c = Client(core, ft())
    c.allocate()
    assert code(c.bind(0x4001, "8.8.8.8", 5000)) == 200
    core.receive_datagram(b"\x40\x01\x00\x03abc\x00", c.ft, 1.0)
    out = core.datagrams_to_send(1.0)
    assert len(out) == 1 and isinstance(out[0], ToPeer)
    assert out[0].peer == ("8.8.8.8", 5000) and out[0].data == b"abc"
    relay = next(iter(core.allocations[c.ft].relays.values()))
    core.receive_peer_datagram(relay, b"hello", ("8.8.8.8", 5000), 1.0)
    back = core.datagrams_to_send(1.0)
    assert isinstance(back[0], ToClient) and back[0].data == b"\x40\x01\x00\x05hello"
    core.receive_peer_datagram(relay, b"hi", ("8.8.8.8", 6000), 1.0)
    ind = parse_message(core.datagrams_to_send(1.0)[0].data)
    assert ind.method == Method.DATA and ind.cls == MessageClass.INDICATION
    core.receive_peer_datagram(relay, b"x", ("9.9.9.9", 6000), 1.0)
    assert core.datagrams_to_send(1.0) == []
    assert core.stats.dropped["no_permission"] == 1


def test_channel_bind_errors() -> None:
    core, _ = make_core(rfc5766_channels=False)
    c = Client(core, ft())
    c.allocate()
    assert code(c.bind(0x3FFF, "8.8.8.8", 1)) == 400
    assert code(c.bind(0x5000, "8.8.8.8", 1)) == 400
    assert code(c.bind(0x4000, "8.8.8.8", 1)) == 200
    assert code(c.bind(0x4000, "8.8.4.4", 1)) == 400
    assert code(c.bind(0x4001, "8.8.8.8", 1)) == 400
    assert code(c.bind(0x4000, "8.8.8.8", 1)) == 200


def test_expiry_by_one_timer() -> None:
    core, allocator = make_core()
    c = Client(core, ft())
    c.allocate()
    c.bind(0x4000, "8.8.8.8", 1)
    c.permission("1.1.1.1")
    alloc = core.allocations[c.ft]
    assert core.get_timer() == 300.0
    core.handle_timer(300.0)
    assert "1.1.1.1" not in alloc.permissions and "8.8.8.8" not in alloc.permissions
    assert 0x4000 in alloc.channels
    core.handle_timer(600.0)
    assert not core.allocations and not alloc.channels
    assert len(allocator.ports) == 10
    core.handle_timer(10_000.0)
    assert core.get_timer() is None


def test_send_indication_needs_permission() -> None:
    core, _ = make_core()
    c = Client(core, ft())
    c.allocate()
    assert c.send("8.8.8.8", 53, b"q") == []
    c.permission("8.8.8.8")
    sent = c.send("8.8.8.8", 53, b"q")
    assert [(o.peer, o.data) for o in sent] == [(("8.8.8.8", 53), b"q")]


def test_malformed_is_dropped_and_counted() -> None:
    core, _ = make_core()
    core.receive_datagram(b"\x00\x01\x00\x04" + b"\x21\x12\xa4\x42" + b"x" * 12, ft(), 0.0)
    core.receive_datagram(b"garbage!", ft(), 0.0)
    assert core.datagrams_to_send(0.0) == []
    assert core.stats.dropped["malformed"] >= 1


# -- amplification: see tests/turn/test_amplification.py ----------------------------------------


def test_authenticated_error_carries_integrity() -> None:
    core, _ = make_core()
    c = Client(core, ft())
    c.allocate()
    response = c.permission("10.0.0.1")
    assert code(response) == 403 and response is not None
    response.verify_integrity(c.key)
    assert response.get(ErrorCode) is not None


def test_region_constant() -> None:
    assert REGION == "eu-west" and ipaddress.ip_address(SERVER[0])


# -- relay to relay on one node --------------------------------------------------------------


def _two_allocations() -> tuple[Client, Client, tuple[str, int], tuple[str, int]]:
    core, _ = make_core(allow_peer=["198.51.100.0/24"])
    a, b = Client(core, ft(1)), Client(core, ft(2), participant="bob")
    ra, rb = a.allocate(), b.allocate()
    assert ra is not None and rb is not None
    relay_a, relay_b = ra.get(XorRelayedAddress), rb.get(XorRelayedAddress)
    assert relay_a is not None and relay_b is not None
    return a, b, (str(relay_a.address), relay_a.port), (str(relay_b.address), relay_b.port)


def test_two_allocations_on_one_node_relay_to_each_other() -> None:
    a, b, relay_a, relay_b = _two_allocations()
    core = a.core
    assert code(a.permission(relay_b[0])) == 200
    assert code(b.permission(relay_a[0])) == 200
    # Send indication from a to b's relay: leaves a's relay towards b's relay address ...
    sent = a.send(*relay_b, b"via-send")
    assert [(o.peer, o.data) for o in sent] == [(relay_b, b"via-send")]
    # ... where the kernel would deliver it to b's relay socket; b's permission lets it in.
    b_relay = next(iter(core.allocations[b.ft].relays.values()))
    core.receive_peer_datagram(b_relay, b"via-send", relay_a, 1.0)
    out = core.datagrams_to_send(1.0)
    assert len(out) == 1 and isinstance(out[0], ToClient) and out[0].five_tuple == b.ft
    # ChannelData both ways once each side bound a channel to the other's relay.
    assert code(a.bind(0x4000, *relay_b)) == 200
    assert code(b.bind(0x4001, *relay_a)) == 200
    core.receive_datagram(b"\x40\x00\x00\x02hi", a.ft, 2.0)
    to_b = core.datagrams_to_send(2.0)
    assert [(o.peer, o.data) for o in to_b if isinstance(o, ToPeer)] == [(relay_b, b"hi")]
    core.receive_peer_datagram(b_relay, b"hi", relay_a, 2.0)
    assert core.datagrams_to_send(2.0)[0].data == b"\x40\x01\x00\x02hi"


def test_receiving_allocation_permission_decides_delivery() -> None:
    a, b, relay_a, relay_b = _two_allocations()
    core = a.core
    assert code(a.permission(relay_b[0])) == 200
    assert len(a.send(*relay_b, b"x")) == 1  # a may send ...
    b_relay = next(iter(core.allocations[b.ft].relays.values()))
    core.receive_peer_datagram(b_relay, b"x", relay_a, 1.0)
    assert core.datagrams_to_send(1.0) == []  # ... but b never permitted a: not delivered
    assert core.stats.dropped["no_permission"] == 1


def test_free_relay_port_is_denied_at_send_and_bind() -> None:
    a, _b, relay_a, relay_b = _two_allocations()
    core = a.core
    free = (relay_a[0], 50009)
    assert free[1] not in (relay_a[1], relay_b[1])
    assert code(a.permission(free[0])) == 200  # per IP: the relay IP itself is allowed
    assert a.send(*free, b"probe") == []
    assert core.stats.peer_denied["own-endpoint"] == 1
    assert code(a.bind(0x4002, *free)) == 403
    assert core.stats.peer_denied["own-endpoint"] == 2


def test_channel_to_a_relay_is_unbound_when_that_allocation_goes() -> None:
    a, b, _relay_a, relay_b = _two_allocations()
    core = a.core
    assert code(a.bind(0x4000, *relay_b)) == 200
    assert code(b.request(Method.REFRESH, Lifetime(0))) == 200
    assert 0x4000 not in core.allocations[a.ft].channels
    core.receive_datagram(b"\x40\x00\x00\x02hi", a.ft, 3.0)
    assert core.datagrams_to_send(3.0) == []
    assert a.send(*relay_b, b"late") == []  # the port is free now: denied


def test_network_quota_counts_every_username_of_one_network() -> None:
    """Issue 15 #6: each join mints a fresh username, so the user quota alone never stops one
    network; the network quota (/24, /48) does, whatever the usernames."""
    core, _ = make_core(network_quota=2, user_quota=10)
    same_net = [Client(core, ft(1000 + i, ip=f"203.0.113.{5 + i}"), participant=f"p{i}")
                for i in range(3)]
    assert [code(c.allocate()) for c in same_net] == [200, 200, 486]
    assert core.stats.refused_allocations == {"network_quota": 1}
    assert code(Client(core, ft(1, ip="198.51.100.9"), participant="other").allocate()) == 200
    assert code(same_net[0].request(Method.REFRESH, Lifetime(0))) == 200
    assert code(same_net[2].allocate()) == 200
    assert core.per_network == {0xCB007100 >> 8: 2, 0xC6336400 >> 8: 1}


def test_network_quota_ipv6_48_and_expiry_release() -> None:
    core, _ = make_core(network_quota=1)
    first = Client(core, ft(1, ip="2001:db8:1:1::5"), participant="a")
    assert code(first.allocate()) == 200
    same_48 = Client(core, ft(2, ip="2001:db8:1:ffff::9"), participant="b")
    assert code(same_48.allocate()) == 486
    assert code(Client(core, ft(3, ip="2001:db8:2::1"), participant="c").allocate()) == 200
    core.handle_timer(700.0)  # every allocation expired: the network's count goes too
    assert core.per_network == {}
    same_48.now, same_48.nonce = 700.0, ""
    assert code(same_48.allocate()) == 200
