"""EVEN-PORT and RESERVATION-TOKEN (RFC 8656 §7.2) in the sans-IO core, with virtual time.

What coturn's ``turnutils_uclient`` does in its default RTP/RTCP mode (tested with the real tool
in test_interop): Allocate with EVEN-PORT R=1 gets an even port and a token, and a second
Allocate from another five-tuple presenting the token gets the port just above it.
"""

from __future__ import annotations

from tests.turn.helpers import SERVER, Client, code, make_core
from turn.server.allocation import FiveTuple
from turn.stun import (
    AdditionalAddressFamily,
    EvenPort,
    Method,
    RequestedAddressFamily,
    ReservationToken,
    XorRelayedAddress,
)


def ft(port: int) -> FiveTuple:
    return FiveTuple("udp", ("203.0.113.5", port), SERVER)


def _relayed_port(response: object) -> int:
    relayed = response.get(XorRelayedAddress)  # type: ignore[attr-defined]
    assert relayed is not None
    return int(relayed.port)


def test_even_port_with_reservation_then_token_gets_the_next_port() -> None:
    core, allocator = make_core()
    allocator.ports = [50001, 50002, 50003, 50004, 50005]
    rtp = Client(core, ft(1))
    answer = rtp.allocate(EvenPort(True))
    assert code(answer) == 200
    assert answer is not None
    port = _relayed_port(answer)
    assert port % 2 == 0 and port + 1 <= 50005
    token = answer.get(ReservationToken)
    assert token is not None and len(token.token) == 8
    assert port + 1 not in allocator.ports  # held, not free for anyone else
    rtcp = Client(core, ft(2))
    second = rtcp.allocate(token)
    assert code(second) == 200
    assert _relayed_port(second) == port + 1
    assert core.stats.reservations == {"held": 1, "redeemed": 1}
    # Single use: the token is spent.
    again = Client(core, ft(3)).allocate(token)
    assert code(again) == 508
    assert core.stats.reservations["refused"] == 1


def test_even_port_without_reservation_gets_an_even_port_and_no_token() -> None:
    core, allocator = make_core()
    allocator.ports = [50001, 50002, 50003]
    answer = Client(core, ft(1)).allocate(EvenPort(False))
    assert code(answer) == 200 and answer is not None
    assert _relayed_port(answer) == 50002 and answer.get(ReservationToken) is None
    assert sorted(allocator.ports) == [50001, 50003]


def test_unredeemed_reservation_expires_after_30_s_and_frees_the_port() -> None:
    core, allocator = make_core()
    allocator.ports = [50002, 50003]
    answer = Client(core, ft(1)).allocate(EvenPort(True))
    assert answer is not None and code(answer) == 200
    token = answer.get(ReservationToken)
    assert token is not None and allocator.ports == []
    deadline = core.get_timer()
    assert deadline is not None and deadline <= 30.0
    core.handle_timer(30.0)
    assert allocator.ports == [50003]
    assert core.stats.reservations["expired"] == 1
    late = Client(core, ft(2))
    late.now = 31.0
    assert code(late.allocate(token)) == 508


def test_no_even_pair_free_is_508() -> None:
    core, allocator = make_core()
    allocator.ports = [50002, 50005]
    assert code(Client(core, ft(1)).allocate(EvenPort(True))) == 508
    assert sorted(allocator.ports) == [50002, 50005]  # nothing taken


def test_bad_combinations_are_400() -> None:
    core, _ = make_core()
    token = ReservationToken(b"12345678")
    for attrs in ((token, EvenPort(False)), (token, RequestedAddressFamily(0x01)),
                  (EvenPort(True), AdditionalAddressFamily(0x02))):
        assert code(Client(core, ft(1)).allocate(*attrs)) == 400, attrs
    assert len(core.allocations) == 0 and len(core.reservations) == 0


def test_quota_refusal_keeps_the_reservation() -> None:
    core, _ = make_core(user_quota=1)
    first = Client(core, ft(1))
    answer = first.allocate(EvenPort(True))
    assert answer is not None
    token = answer.get(ReservationToken)
    assert token is not None
    assert code(Client(core, ft(2)).allocate(token)) == 486  # same user, quota 1
    assert len(core.reservations) == 1
    assert code(first.request(Method.REFRESH)) == 200
    assert code(Client(core, ft(3), participant="bob").allocate(token)) == 200
