"""Arbitrary datagrams never raise out of PeerTransport, ClientTransport or TransportMux."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from router.transport.events import Address
from tests.transport.wiring import CLIENT_ADDR, SERVER_ADDR, connect, make_pair

OTHER = ("192.0.2.1", 1)

# Bias towards each RFC 7983 range so every parser gets exercised, not just the "drop" branch.
first_bytes = st.sampled_from([0, 1, 3, 20, 22, 23, 63, 64, 128, 0x80, 0x90, 191, 255])
datagram = st.one_of(
    st.binary(max_size=1600),
    st.builds(lambda b, rest: bytes([b]) + rest, first_bytes, st.binary(max_size=300)),
    # STUN-shaped: valid header with the magic cookie and a matching length.
    st.binary(max_size=120).map(
        lambda body: (
            struct.pack("!HHI", 0x0001, len(body) & ~3, 0x2112A442)
            + bytes(12)
            + body[: len(body) & ~3]
        )
    ),
)
sources = st.sampled_from([CLIENT_ADDR, OTHER, ("2001:db8::1", 5, 0, 0)])


@settings(max_examples=150)
@given(st.lists(st.tuples(datagram, sources), max_size=8), st.booleans())
def test_arbitrary_datagrams_never_raise(
    inputs: list[tuple[bytes, Address]], connected: bool
) -> None:
    net, peer, client = make_pair()
    if connected:
        connect(net, peer, client)
    now = net.now
    for data, addr in inputs:
        net.mux.receive_datagram(data, addr, now)
        peer.receive_datagram(data, addr, now)
        client.receive_datagram(data, SERVER_ADDR if addr == CLIENT_ADDR else addr, now)
        now += 0.1
    net.mux.datagrams_to_send(now)
    net.mux.handle_timer(now + 100)
    client.handle_timer(now + 100)
    while net.mux.next_event() is not None:
        pass


@settings(max_examples=100)
@given(st.binary(min_size=1, max_size=200), st.integers(min_value=0, max_value=199))
def test_mutated_handshake_datagrams_never_raise(noise: bytes, position: int) -> None:
    """Corrupt real DTLS and STUN traffic in flight, a byte range at a time."""
    net, _peer, client = make_pair()
    client.connect(0.0)
    for _ in range(6):
        for data, _dest in client.datagrams_to_send(net.now):
            pos = position % len(data)
            mutated = data[:pos] + noise[: len(data) - pos] + data[pos + len(noise) :]
            net.mux.receive_datagram(mutated, CLIENT_ADDR, net.now)
            net.mux.receive_datagram(data, CLIENT_ADDR, net.now)
        for data, _dest in net.mux.datagrams_to_send(net.now):
            pos = position % len(data)
            mutated = data[:pos] + noise[: len(data) - pos] + data[pos + len(noise) :]
            client.receive_datagram(mutated, SERVER_ADDR, net.now)
            client.receive_datagram(data, SERVER_ADDR, net.now)
        net.collect()
