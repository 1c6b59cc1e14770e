"""The sans-IO client core against hand-built server answers: 401, 438, errors, timeouts."""

from __future__ import annotations

import itertools
from ipaddress import IPv4Address

from benchmarks.turn_load.client import (
    Allocated,
    ClientConfig,
    Closed,
    Failed,
    PeerReady,
    Refreshed,
    State,
    TurnClient,
)
from benchmarks.turn_load.credentials import rest_password, rest_username
from turn.stun import (
    Lifetime,
    Nonce,
    Realm,
    StunMessage,
    Username,
    XorMappedAddress,
    XorRelayedAddress,
    long_term_key,
    parse_message,
)

USER = rest_username(1_900_000_000, "alice", "eu-west")
PASSWORD = rest_password("secret", USER)
KEY = long_term_key(USER, "regio", PASSWORD)


def make_client(**overrides: object) -> TurnClient:
    counter = itertools.count()
    config = ClientConfig(USER, PASSWORD, **overrides)  # type: ignore[arg-type]
    return TurnClient(config, new_transaction_id=lambda: next(counter).to_bytes(12, "big"))


def only_request(client: TurnClient, now: float = 0.0) -> StunMessage:
    out = client.datagrams_to_send(now)
    assert len(out) == 1
    return parse_message(out[0])


def allocated(client: TurnClient) -> None:
    client.allocate(0.0)
    first = only_request(client)
    client.receive_datagram(
        first.error_response(401, Realm("regio"), Nonce("n1")).encode(fingerprint=True), 0.0
    )
    second = only_request(client)
    ok = second.response(
        XorRelayedAddress(IPv4Address("127.0.0.1"), 50000),
        XorMappedAddress(IPv4Address("127.0.0.1"), 40000),
        Lifetime(600),
    )
    client.receive_datagram(ok.encode(integrity_key=KEY, fingerprint=True), 0.1)


def test_rest_credentials_forms() -> None:
    assert rest_username(100, "bob") == "100:bob"
    assert rest_username(100, "bob", "eu") == "100:eu:bob"
    # Cross-checked with: printf 100:bob | openssl dgst -sha1 -hmac secret -binary | base64
    assert rest_password("secret", "100:bob") == "HiKral+w/GSj0F1lZFx22P7mM14="


def test_401_then_authenticated_allocate() -> None:
    client = make_client()
    client.allocate(0.0)
    first = only_request(client)
    assert not first.has_integrity and first.get(Username) is None
    client.receive_datagram(
        first.error_response(401, Realm("regio"), Nonce("n1")).encode(fingerprint=True), 0.0
    )
    second = only_request(client)
    assert second.get(Username) == Username(USER)
    assert second.get(Nonce) == Nonce("n1")
    second.verify_integrity(KEY)
    ok = second.response(XorRelayedAddress(IPv4Address("127.0.0.1"), 50000), Lifetime(600))
    client.receive_datagram(ok.encode(integrity_key=KEY, fingerprint=True), 0.1)
    assert client.next_event() == Allocated(("127.0.0.1", 50000), None, 600)
    assert client.state is State.ALLOCATED
    assert client.get_timer() == 0.1 + 300  # refresh at half the granted lifetime


def test_stale_nonce_retries_with_fresh_nonce() -> None:
    client = make_client()
    allocated(client)
    client.next_event()
    client.bind_peer(("127.0.0.1", 50001), 0x4000, 1.0)
    permission, channel = (parse_message(d) for d in client.datagrams_to_send(1.0))
    client.receive_datagram(
        permission.error_response(438, Realm("regio"), Nonce("n2")).encode(), 1.0
    )
    retry = only_request(client, 1.0)
    assert retry.get(Nonce) == Nonce("n2") and retry.method == permission.method
    client.receive_datagram(retry.response().encode(integrity_key=KEY), 1.0)
    assert client.next_event() is None  # channel still pending
    client.receive_datagram(channel.response().encode(integrity_key=KEY), 1.0)
    assert client.next_event() == PeerReady(("127.0.0.1", 50001), 0x4000)


def test_wrong_credentials_fail_with_401() -> None:
    client = make_client()
    client.allocate(0.0)
    first = only_request(client)
    client.receive_datagram(first.error_response(401, Realm("r"), Nonce("n")).encode(), 0.0)
    second = only_request(client)
    client.receive_datagram(second.error_response(401, Realm("r"), Nonce("n")).encode(), 0.0)
    event = client.next_event()
    assert isinstance(event, Failed) and event.code == 401
    assert "Allocate answered 401" in event.describe()
    assert client.state is State.FAILED


def test_retransmits_then_gives_up() -> None:
    client = make_client(rto=0.1, max_transmits=3, timeout=1.0)
    client.allocate(0.0)
    assert len(client.datagrams_to_send(0.0)) == 1
    sends = 0
    now = 0.0
    while (timer := client.get_timer()) is not None and timer < 10:
        now = timer
        client.handle_timer(now)
        sends += len(client.datagrams_to_send(now))
    assert sends == 2  # three transmissions in all
    event = client.next_event()
    assert isinstance(event, Failed) and event.code is None and now == 1.0


def test_forged_success_is_ignored() -> None:
    client = make_client()
    client.allocate(0.0)
    first = only_request(client)
    client.receive_datagram(first.error_response(401, Realm("regio"), Nonce("n")).encode(), 0.0)
    second = only_request(client)
    forged = second.response(XorRelayedAddress(IPv4Address("127.0.0.9"), 1))
    client.receive_datagram(forged.encode(integrity_key=b"wrong"), 0.0)
    assert client.next_event() is None and client.dropped == 1


def test_refresh_and_close() -> None:
    client = make_client()
    allocated(client)
    client.next_event()
    client.handle_timer(301.0)
    refresh = only_request(client, 301.0)
    assert refresh.get(Lifetime) == Lifetime(600)
    client.receive_datagram(refresh.response(Lifetime(600)).encode(integrity_key=KEY), 301.0)
    assert client.next_event() == Refreshed(600)
    client.close(302.0)
    close = only_request(client, 302.0)
    assert close.get(Lifetime) == Lifetime(0)
    client.receive_datagram(close.error_response(437).encode(), 302.0)
    assert client.next_event() == Closed()
    assert client.get_timer() is None
