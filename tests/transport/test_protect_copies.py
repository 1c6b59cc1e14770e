"""The compiled flush (``router.transport._fastpath.protect_copies``) against the media plane's
Python grouping (``ForwarderPlane.flush`` with the helper switched off).

Two sides, each with subscriber transports connected over ICE and DTLS for real, a transport
that closed (it may not send), a sink that is not a transport (as a trunk leg is) and copies
for a participant that left, get the same copies: good packets, packets too long for SRTP and
too short for RTP. Each subscriber must decrypt the same packets in the same order on both
sides, and every counter must match.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.session import forwarder_adapter
from router.session.forwarder_adapter import ForwarderPlane
from router.transport import fastpath
from router.transport.client import ClientTransport
from router.transport.peer import PeerTransport
from tests.transport.test_ingest import _rtp
from tests.transport.wiring import Network, connect, make_pair


@pytest.fixture(autouse=True)
def _built() -> None:
    if not fastpath.built():
        pytest.fail(f"make setup should have built the fast path: {fastpath.describe()}")


class LegSink:
    """A sink that is not a transport (a trunk leg's shape): it only has the protocol."""

    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []

    def send_rtp(self, packet: bytes) -> bool:
        self.batches.append([packet])
        return True

    def send_rtcp(self, packet: bytes) -> bool:
        return True

    def send_rtp_batch(self, packets: list[bytes]) -> int:
        self.batches.append(list(packets))
        return len(packets)


class Side:
    def __init__(self) -> None:
        self.links: list[tuple[Network, PeerTransport, ClientTransport]] = []
        for seed in (11, 12, 13):
            net, peer, client = make_pair(seed=seed)
            connect(net, peer, client)
            self.links.append((net, peer, client))
        closed_net, closed_peer, _ = self.links[2]
        closed_net.mux.close_peer(closed_peer, "left")
        for net, _, _ in self.links:
            net.mux.datagrams_to_send(net.now)  # the handshake's leftovers
        self.leg = LegSink()
        self.plane = ForwarderPlane()
        self.plane._sinks = {"s0": self.links[0][1], "s1": self.links[1][1],
                             "s2": self.links[2][1], "leg": self.leg}  # fmt: skip

    def flush(self, copies: list[tuple[str, bytes]], compiled: bool) -> int:
        self.plane.forwarder._rtp_out = list(copies)
        saved = forwarder_adapter._protect_copies
        forwarder_adapter._protect_copies = fastpath.compiled().protect_copies if compiled else None
        try:
            return self.plane.flush()
        finally:
            forwarder_adapter._protect_copies = saved

    def outcome(self) -> dict[str, object]:
        received = []
        for net, peer, client in self.links:
            plain = []
            for data, _ in net.mux.datagrams_to_send(net.now):
                srtp = client.srtp
                assert srtp is not None
                plain.append(srtp.unprotect_rtp(data))
            srtp_stats = None if peer.srtp is None else asdict(peer.srtp.stats)
            received.append((plain, srtp_stats, asdict(peer.stats)))
        return {"received": received, "leg": self.leg.batches}


copies = st.lists(
    st.tuples(
        st.sampled_from(["s0", "s1", "s2", "leg", "gone"]),
        st.one_of(
            st.builds(lambda seq, size: _rtp(seq, size), st.integers(0, 0xFFFF),
                      st.sampled_from([0, 20, 1100, 1480])),
            st.binary(max_size=11),
        ),
    ),
    max_size=30,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(copies, min_size=1, max_size=3))
def test_compiled_flush_equals_the_grouping(batches: list[list[tuple[str, bytes]]]) -> None:
    reference, compiled = Side(), Side()
    for batch in batches:
        assert compiled.flush(batch, True) == reference.flush(batch, False)
    assert compiled.outcome() == reference.outcome()


def test_copies_reach_their_transports_in_order_without_python_grouping() -> None:
    side = Side()
    batch = [("s0", _rtp(1, 100)), ("s1", _rtp(1, 200)), ("s0", _rtp(2, 300)),
             ("leg", _rtp(9, 10)), ("s2", _rtp(1, 10)), ("gone", _rtp(1, 10))]  # fmt: skip
    queued, rest = fastpath.compiled().protect_copies(batch, side.plane._sinks)
    assert queued == 3
    assert rest == [("leg", _rtp(9, 10)), ("s2", _rtp(1, 10))]  # for the grouping to hand on
    outcome = side.outcome()["received"]
    assert isinstance(outcome, list)
    assert outcome[0][0] == [_rtp(1, 100), _rtp(2, 300)]
    assert outcome[1][0] == [_rtp(1, 200)]


def test_protect_copies_refuses_the_wrong_shapes() -> None:
    protect = fastpath.compiled().protect_copies
    with pytest.raises(TypeError):
        protect((), {})
    with pytest.raises(TypeError):
        protect([("s0",)], {})
