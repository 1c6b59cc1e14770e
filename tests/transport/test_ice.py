"""ICE-lite answering rules, consent on the lite side, and the controlling client's timers."""

from __future__ import annotations

import itertools
import random
from ipaddress import IPv4Address

from router.transport import (
    ConsentLost,
    IceClientState,
    IceConnected,
    IceControllingAgent,
    IceLiteAgent,
    TransportClosed,
    TransportConfig,
)
from router.transport.ice_lite import error_code_of
from turn.stun import (
    IceControlled,
    IceControlling,
    MessageClass,
    Method,
    RawAttribute,
    StunMessage,
    UseCandidate,
    Username,
    XorMappedAddress,
    parse_message,
    short_term_key,
)

ADDR = ("203.0.113.7", 50000)
OTHER = ("203.0.113.8", 50001)


def lite() -> IceLiteAgent:
    return IceLiteAgent(
        local_ufrag="srvU",
        local_password="server-password-0123456789",
        remote_ufrag="cliU",
        remote_password="client-password-0123456789",
    )


def request(
    *attrs: object,
    username: str = "srvU:cliU",
    password: str = "server-password-0123456789",
    fingerprint: bool = True,
    tid: bytes = b"t" * 12,
) -> bytes:
    attributes = (Username(username), IceControlling(7), *attrs)
    message = StunMessage(Method.BINDING, MessageClass.REQUEST, tid, attributes)  # type: ignore[arg-type]
    return message.encode(integrity_key=short_term_key(password), fingerprint=fingerprint)


def test_valid_request_gets_signed_response_with_mapped_address() -> None:
    agent = lite()
    raw = agent.handle_stun(request(), ADDR, 0.0)
    assert raw is not None
    response = parse_message(raw)
    assert response.cls is MessageClass.SUCCESS and response.transaction_id == b"t" * 12
    assert response.get(XorMappedAddress) == XorMappedAddress(IPv4Address(ADDR[0]), ADDR[1])
    assert response.integrity_ok(short_term_key("server-password-0123456789"))
    assert response.has_fingerprint
    assert agent.stats.answered == 1
    # A check without USE-CANDIDATE does not validate the address.
    assert not agent.is_validated(ADDR) and agent.next_event() is None


def test_unauthenticated_requests_get_no_answer_and_are_counted() -> None:
    agent = lite()
    assert agent.handle_stun(request(password="wrong-password-0123456789"), ADDR, 0) is None
    assert agent.handle_stun(request(username="srvU:someoneelse"), ADDR, 0) is None
    assert agent.handle_stun(request(username="other:cliU"), ADDR, 0) is None
    assert agent.handle_stun(request(fingerprint=False), ADDR, 0) is None
    no_integrity = StunMessage(
        Method.BINDING, MessageClass.REQUEST, b"x" * 12, (Username("srvU:cliU"),)
    ).encode(fingerprint=True)
    assert agent.handle_stun(no_integrity, ADDR, 0) is None
    assert agent.handle_stun(b"\x00\x01\x00\x00garbage-garbage!", ADDR, 0) is None
    assert agent.stats.bad_integrity == 2
    assert agent.stats.bad_username == 2
    assert agent.stats.malformed == 2
    assert agent.stats.answered == 0 and not agent.nominated


def test_tampered_request_is_refused() -> None:
    raw = bytearray(request(UseCandidate()))
    raw[27] ^= 0xFF  # inside USERNAME's value, covered by integrity and fingerprint
    agent = lite()
    assert agent.handle_stun(bytes(raw), ADDR, 0) is None
    assert not agent.nominated


def test_role_conflict_answered_with_487_as_lite_is_always_controlled() -> None:
    agent = lite()
    message = StunMessage(
        Method.BINDING,
        MessageClass.REQUEST,
        b"r" * 12,
        (Username("srvU:cliU"), IceControlled(2**63), UseCandidate()),
    ).encode(integrity_key=short_term_key("server-password-0123456789"), fingerprint=True)
    raw = agent.handle_stun(message, ADDR, 0)
    assert raw is not None
    response = parse_message(raw)
    assert response.cls is MessageClass.ERROR and error_code_of(response) == 487
    assert agent.stats.role_conflicts == 1 and not agent.nominated


def test_unknown_required_attribute_gets_420() -> None:
    agent = lite()
    raw = agent.handle_stun(request(RawAttribute(0x7F01, b"abcd")), ADDR, 0)
    assert raw is not None and error_code_of(parse_message(raw)) == 420


def test_use_candidate_nominates_and_moves_the_peer() -> None:
    agent = lite()
    assert agent.handle_stun(request(UseCandidate()), ADDR, 1.0) is not None
    assert agent.next_event() == IceConnected(ADDR)
    assert agent.is_validated(ADDR) and agent.can_send(ADDR) and agent.selected == ADDR
    agent.handle_stun(request(UseCandidate()), ADDR, 2.0)
    assert agent.next_event() is None  # same address: no new event
    agent.handle_stun(request(UseCandidate()), OTHER, 3.0)
    assert agent.next_event() == IceConnected(OTHER)
    assert agent.selected == OTHER and agent.is_validated(ADDR)  # old path kept while fresh


def test_consent_lapses_after_30_seconds_without_checks() -> None:
    agent = lite()
    agent.handle_stun(request(UseCandidate()), ADDR, 0.0)
    agent.next_event()
    for t in (5.0, 10.0, 15.0):
        agent.handle_stun(request(), ADDR, t)  # consent checks
    assert agent.get_timer() == 45.0
    agent.handle_timer(44.9)
    assert agent.can_send(ADDR)
    agent.handle_timer(45.0)
    assert agent.next_event() == ConsentLost(ADDR)
    assert not agent.can_send(ADDR) and agent.consent_lost and agent.selected is None
    # Consent loss is final: a late check is answered but sending does not resume.
    agent.handle_stun(request(UseCandidate()), ADDR, 50.0)
    assert not agent.can_send(ADDR)


def test_selected_path_lapse_falls_back_to_a_fresh_nominated_path() -> None:
    agent = lite()
    agent.handle_stun(request(UseCandidate()), ADDR, 0.0)
    agent.handle_stun(request(UseCandidate()), OTHER, 1.0)
    agent.handle_stun(request(UseCandidate()), ADDR, 2.0)  # browser switched back
    while agent.next_event() is not None:
        pass
    agent.handle_stun(request(), OTHER, 20.0)
    agent.handle_timer(32.0)
    assert agent.next_event() == IceConnected(OTHER) and agent.selected == OTHER


def client(seed: int = 3, **config: float) -> IceControllingAgent:
    return IceControllingAgent(
        remote_ufrag="srvU",
        remote_password="server-password-0123456789",
        remote_address=("198.51.100.1", 3478),
        local_ufrag="cliU",
        local_password="client-password-0123456789",
        random=random.Random(seed).random,
        config=TransportConfig(**config),  # type: ignore[arg-type]
    )


def test_client_check_is_what_a_lite_server_accepts() -> None:
    agent = client()
    agent.start(0.0)
    (raw,) = agent.datagrams_to_send()
    message = parse_message(raw)
    assert message.get(UseCandidate) is not None and message.get(IceControlling) is not None
    assert message.get(Username) == Username("srvU:cliU")
    server = lite()
    response = server.handle_stun(raw, ADDR, 0.0)
    assert response is not None
    agent.handle_stun(response, 0.0)
    assert agent.next_event() == IceConnected(("198.51.100.1", 3478))
    assert agent.state is IceClientState.CONNECTED


def test_client_retransmits_then_fails() -> None:
    agent = client(stun_rto=0.5, stun_max_transmissions=3)
    agent.start(0.0)
    times = [0.0]
    assert len(agent.datagrams_to_send()) == 1
    while (deadline := agent.get_timer()) is not None:
        agent.handle_timer(deadline)
        if agent.datagrams_to_send():
            times.append(deadline)
    assert times == [0.0, 0.5, 1.5]
    event = agent.next_event()
    assert isinstance(event, TransportClosed) and agent.state is IceClientState.FAILED


def test_client_consent_checks_are_randomised_and_deterministic() -> None:
    def intervals(seed: int) -> list[float]:
        agent = client(seed)
        server = lite()
        agent.start(0.0)
        now, sent = 0.0, []
        for _ in range(8):
            for raw in agent.datagrams_to_send():
                response = server.handle_stun(raw, ADDR, now)
                assert response is not None
                agent.handle_stun(response, now)
                sent.append(now)
            deadline = agent.get_timer()
            assert deadline is not None
            now = deadline
            agent.handle_timer(now)
        return [b - a for a, b in itertools.pairwise(sent)]

    first = intervals(11)
    assert first == intervals(11)
    assert first != intervals(12)
    assert all(4.0 <= gap <= 6.0 for gap in first) and len(set(first)) > 1


def test_client_consent_lost_after_30_seconds_of_silence() -> None:
    agent = client()
    server = lite()
    agent.start(0.0)
    (raw,) = agent.datagrams_to_send()
    agent.handle_stun(server.handle_stun(raw, ADDR, 0.0) or b"", 0.0)
    assert agent.next_event() is not None
    now = 0.0
    while agent.state is IceClientState.CONNECTED:
        deadline = agent.get_timer()
        assert deadline is not None
        now = deadline
        agent.handle_timer(now)
        agent.datagrams_to_send()  # the router has gone silent: nothing comes back
    assert now == 30.0
    assert isinstance(agent.next_event(), ConsentLost)
    assert not agent.can_send()
