"""Anti-amplification by a cumulative byte budget per unauthenticated UDP source.

The property, by byte counts: over any sequence of unauthenticated datagrams from one source,
the bytes the node sends to it never exceed three times the bytes it received from it (checked
after every datagram, so at every prefix; RFC 9000 §8.1's factor). Then the cases that matter to
real clients: a 36-byte first Allocate (browsers, aioice) and a bare 20-byte Binding are answered
at once, in full; at factor 1 the Allocate waits for its retransmission; the table stays
bounded.
"""

from __future__ import annotations

import ipaddress
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.turn.helpers import SERVER, Client, code, make_core, tid
from turn.server.allocation import FiveTuple
from turn.server.core import ToClient, TurnServerCore
from turn.stun import (
    Attribute,
    ChannelNumber,
    Data,
    EvenPort,
    Lifetime,
    MessageClass,
    Method,
    Nonce,
    Realm,
    RequestedTransport,
    Software,
    StunMessage,
    Username,
    XorPeerAddress,
    parse_message,
)

SOURCE = FiveTuple("udp", ("203.0.113.5", 40000), SERVER)

# -- the property ---------------------------------------------------------------------------

methods = st.sampled_from([Method.BINDING, Method.ALLOCATE, Method.REFRESH,
                           Method.CREATE_PERMISSION, Method.CHANNEL_BIND, 0x00F, 0x3FF])
attributes: st.SearchStrategy[Attribute] = st.one_of(
    st.just(RequestedTransport(17)),
    st.integers(0, 2**32 - 1).map(Lifetime),
    st.booleans().map(EvenPort),
    st.text("abcdefghij", max_size=40).map(Software),
    st.text("0123456789:abc-", min_size=1, max_size=60).map(Username),
    st.sampled_from(["regio", "other", ""]).map(Realm),
    st.sampled_from(["AAAAAAAA", "bogus-nonce"]).map(Nonce),
    st.integers(0x4000, 0x7FFF).map(ChannelNumber),
    st.just(XorPeerAddress(ipaddress.ip_address("8.8.8.8"), 53)),
)


@st.composite
def stun_requests(draw: st.DrawFn) -> bytes:
    attrs = tuple(draw(st.lists(attributes, max_size=5)))
    cls = draw(st.sampled_from([MessageClass.REQUEST, MessageClass.REQUEST,
                                MessageClass.INDICATION]))
    message = StunMessage(draw(methods), cls, os.urandom(12), attrs)
    # A MESSAGE-INTEGRITY with a key nobody issued: a forged credential, never a valid one.
    key = draw(st.none() | st.binary(min_size=16, max_size=16))
    return message.encode(integrity_key=key, fingerprint=draw(st.booleans()))


datagrams = st.one_of(
    stun_requests(),
    st.binary(max_size=64),  # garbage, ChannelData without allocation, truncated STUN
    st.just(StunMessage(Method.BINDING, MessageClass.REQUEST, bytes(12)).encode()),
)
steps = st.lists(
    st.tuples(datagrams, st.integers(0, 3), st.sampled_from([0.0, 0.5, 3.0, 40.0])),
    min_size=1, max_size=40,
)


def _sent_to(core: TurnServerCore, now: float) -> dict[FiveTuple, int]:
    out: dict[FiveTuple, int] = {}
    for item in core.datagrams_to_send(now):
        assert isinstance(item, ToClient), item
        out[item.five_tuple] = out.get(item.five_tuple, 0) + len(item.data)
    return out


@settings(max_examples=300, deadline=None)
@given(steps=steps, max_sources=st.sampled_from([1, 2, 65536]))
def test_bytes_sent_never_exceed_bytes_received(
        steps: list[tuple[bytes, int, float]], max_sources: int) -> None:
    """Several sources interleaved, retransmissions, idle gaps past the expiry and a table small
    enough to evict: per source, sent <= received after every single datagram."""
    core, _ = make_core(auth_fail_burst=1000, unauth_budget_sources=max_sources)
    sources = [FiveTuple("udp", ("203.0.113.5", 40000 + i), SERVER) for i in range(4)]
    received = dict.fromkeys(sources, 0)
    sent = dict.fromkeys(sources, 0)
    now = 0.0
    history: list[bytes] = []
    for data, who, gap in steps:
        now += gap
        for copy in (data, *history[-1:]):  # each datagram, then a retransmission of the last
            source = sources[who]
            core.receive_datagram(copy, source, now)
            received[source] += len(copy)
            for ft, n in _sent_to(core, now).items():
                sent[ft] += n
            for ft in sources:
                assert sent[ft] <= 3 * received[ft], (ft, sent[ft], received[ft])
        history.append(data)
    assert len(core.amplification) <= max_sources


# -- real clients ---------------------------------------------------------------------------


def _small_allocate(transaction_id: bytes) -> bytes:
    """aioice's (and browsers') first Allocate: REQUESTED-TRANSPORT and LIFETIME, 36 bytes."""
    return StunMessage(Method.ALLOCATE, MessageClass.REQUEST, transaction_id,
                       (RequestedTransport(17), Lifetime(600))).encode()


def test_36_byte_allocate_gets_its_full_401_at_once_then_authenticates() -> None:
    """Issue 15 #10: a browser's first Allocate is answered without waiting for a retransmit."""
    core, _ = make_core()
    c = Client(core, SOURCE)
    first = _small_allocate(tid())
    assert len(first) == 36
    answer = c.raw(first)
    assert len(answer) == 1 and len(answer[0]) <= 3 * 36
    challenge = parse_message(answer[0])
    assert code(challenge) == 401 and challenge.get(Software) is not None
    assert challenge.has_fingerprint
    assert core.stats.dropped["amplification_deferred"] == 0
    nonce = challenge.get(Nonce)
    assert nonce is not None
    c.nonce = nonce.value
    assert len(core.amplification) == 1
    assert code(c.allocate()) == 200
    assert len(core.amplification) == 0  # removed once the source authenticated
    assert core.amplification.counters["authenticated"] == 1


def test_factor_one_defers_the_36_byte_allocate_to_its_retransmission() -> None:
    core, _ = make_core(udp_amplification_factor=1)
    c = Client(core, SOURCE)
    first = _small_allocate(tid())
    assert c.raw(first) == []
    assert core.stats.dropped["amplification_deferred"] == 1
    answer = c.raw(first)  # 72 bytes received in all
    assert len(answer) == 1 and len(answer[0]) <= 72
    assert code(parse_message(answer[0])) == 401


def test_52_byte_allocate_gets_its_full_401_at_once() -> None:
    core, _ = make_core()
    uclient_like = StunMessage(Method.ALLOCATE, MessageClass.REQUEST, tid(), (
        RequestedTransport(17), Lifetime(777), EvenPort(True),
    )).encode(fingerprint=True)
    assert len(uclient_like) == 52
    out = Client(core, SOURCE).raw(uclient_like)
    assert len(out) == 1 and len(out[0]) <= 3 * 52
    response = parse_message(out[0])
    assert code(response) == 401 and response.get(Software) is not None


def test_big_request_answer_stays_within_three_times() -> None:
    core, _ = make_core()
    big = StunMessage(Method.ALLOCATE, MessageClass.REQUEST, tid(), (
        RequestedTransport(17), Software("a client with a long software name " * 3),
    )).encode(fingerprint=True)
    out = Client(core, SOURCE).raw(big)
    response = parse_message(out[0])
    assert response.get(Software) is not None and response.has_fingerprint
    assert len(out[0]) <= 3 * len(big)


def test_bare_binding_answered_at_once() -> None:
    core, _ = make_core()
    c = Client(core, SOURCE)
    binding = StunMessage(Method.BINDING, MessageClass.REQUEST, tid()).encode()
    assert len(binding) == 20
    out = c.raw(binding)
    assert len(out) == 1 and len(out[0]) <= 60
    assert parse_message(out[0]).cls == MessageClass.SUCCESS


def test_many_bindings_never_exceed_three_times() -> None:
    core, _ = make_core()
    c = Client(core, SOURCE)
    received = sent = 0
    for _ in range(50):
        binding = StunMessage(Method.BINDING, MessageClass.REQUEST, tid()).encode()
        received += len(binding)
        sent += sum(len(d) for d in c.raw(binding))
        assert sent <= 3 * received
    assert sent > 0


def test_slack_is_an_explicit_loosening() -> None:
    core, _ = make_core(udp_challenge_slack=16, udp_amplification_factor=1)
    out = Client(core, SOURCE).raw(_small_allocate(tid()))
    assert len(out) == 1 and len(out[0]) <= 36 + 16


def test_streams_are_exempt() -> None:
    core, _ = make_core()
    tcp = FiveTuple("tcp", SOURCE.client, SERVER)
    out = Client(core, tcp).raw(_small_allocate(tid()))
    assert len(out) == 1 and parse_message(out[0]).get(Software) is not None
    assert len(core.amplification) == 0


def test_table_is_bounded_by_size_and_age() -> None:
    # Factor 1, where one copy of a 36-byte request buys no answer, shows what forgetting does.
    core, _ = make_core(unauth_budget_sources=2, unauth_budget_ttl=30.0,
                        udp_amplification_factor=1)
    request = _small_allocate(tid())
    for port in range(3):
        core.receive_datagram(request, FiveTuple("udp", ("203.0.113.5", port + 1), SERVER), 0.0)
    assert len(core.amplification) == 2
    assert core.amplification.counters["evicted"] == 1
    # The evicted source's earlier bytes are forgotten: one more copy is still not enough.
    evicted = FiveTuple("udp", ("203.0.113.5", 1), SERVER)
    core.receive_datagram(request, evicted, 1.0)
    assert core.datagrams_to_send(1.0) == []
    # 30 s idle: the entries expire; a copy after that starts from zero again.
    core.receive_datagram(request, FiveTuple("udp", ("203.0.113.5", 3), SERVER), 40.0)
    assert core.datagrams_to_send(40.0) == []
    assert core.amplification.counters["expired"] == 2
    assert len(core.amplification) == 1


def test_send_and_data_carry_no_budget() -> None:
    core, _ = make_core()
    send = StunMessage(Method.SEND, MessageClass.INDICATION, tid(), (
        XorPeerAddress(ipaddress.ip_address("8.8.8.8"), 53), Data(b"x" * 200))).encode()
    core.receive_datagram(send, SOURCE, 0.0)
    assert len(core.amplification) == 0
    assert core.datagrams_to_send(0.0) == []
