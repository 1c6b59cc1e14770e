"""The forwarding core's compiled loops (router/forwarding/_fanout.c) against the Python
reference: the fan-out, the TWCC feedback loop and the transport-wide sequence reader.

Two forwarders get the same subscriptions and the same packets; one forwards with the compiled
loop, the other with ``routing._copy`` alone. Everything must match: the copies (bytes, order,
recipient), the counters, and every field the loop writes on subscriptions and transport-wide
links, across the cases the loop hands back to Python (new epochs, tails to prepare, packets
older than a subscription, payload types a subscriber does not take, malformed blocks).
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import router.forwarding._fanout as _fanout_module
from router.forwarding import Forwarder, routing, subscriber_links
from router.forwarding import forwarder as forwarder_module
from router.forwarding.link_config import LinkConfig
from router.forwarding.specs import ABS_SEND_TIME, SDES_MID, TRANSPORT_WIDE_CC
from router.forwarding.state import Downstream, Participant
from router.forwarding.subscriber_links import SubscriberLink
from router.forwarding.transport_seq import py_read_transport_seq
from router.rtp import TransportCc
from tests.forwarding.helpers import OPUS, VP8, make_forwarder, rtp, subscription, video_track

# `make setup` builds the helper (like router/transport/_fastpath.c): a missing build fails
# here at import rather than skipping. Taken from the module itself, so REGIO_FASTPATH=off (the
# reference path for the rest of the suite) does not turn these comparisons off.
compiled = _fanout_module.fan_out
route_compiled = _fanout_module.route
twcc_compiled = _fanout_module.twcc_results
read_seq_compiled = _fanout_module.read_transport_seq

#: Subscriber header-extension mappings: none, abs-send-time only, transport-cc in the one-byte
#: form (with and without other elements kept and ids moved), and in the two-byte form (id 15).
MAPPINGS: list[dict[str, int]] = [
    {},
    {ABS_SEND_TIME: 2},
    {TRANSPORT_WIDE_CC: 3},
    {ABS_SEND_TIME: 2, TRANSPORT_WIDE_CC: 3},
    {SDES_MID: 9, TRANSPORT_WIDE_CC: 5},
    {TRANSPORT_WIDE_CC: 15},
    {ABS_SEND_TIME: 14, SDES_MID: 1},
]
CODECS: list[dict[str, int]] = [{VP8: 96, OPUS: 111}, {VP8: 100, OPUS: 111}]

SKIPPED = {"track", "stream", "downlink", "sim", "tw", "spec", "epoch"}
SLOTS = [name for name in Downstream.__slots__ if name not in SKIPPED]
"""Every plain field of a subscription (epochs are process-wide numbers: compared through their
effects; the objects skipped are shared structure, not per-copy state)."""
LINK_FIELDS = ("seq", "sent_at", "sizes")


def _state(fwd: Forwarder) -> dict[str, object]:
    subs = {
        pid: [{name: getattr(d, name, None) for name in SLOTS} for d in downs]
        for pid, downs in fwd._subscriptions.items()
    }
    links = {
        pid: {f: getattr(link, f) for f in LINK_FIELDS} for pid, link in fwd._sub_links.items()
    }
    return {"subs": subs, "links": links, "counters": dict(vars(fwd.counters))}


def _route(fwd: Forwarder, fast: bool, packet: bytes, now: float, *, whole: bool = False) -> int:
    """Route with the compiled fan-out (``fast``) or the reference loop; ``whole`` also lets
    the compiled route take the packet (else the reference route_rtp runs)."""
    saved, saved_route = routing._fan_out, forwarder_module._route
    routing._fan_out = compiled if fast else None
    forwarder_module._route = route_compiled if fast and whole else None
    try:
        return fwd.route_rtp("pub", packet, now)
    finally:
        routing._fan_out, forwarder_module._route = saved, saved_route


def _pair(
    mappings: list[int], codecs: list[int], *, twcc: bool = False
) -> tuple[Forwarder, Forwarder]:
    """Two forwarders in the same state; ``twcc``: the publisher negotiated transport-cc (the
    router records its packets' arrivals for feedback)."""
    pair = []
    for _ in range(2):
        fwd = make_forwarder()
        fwd.add_participant("pub")
        track = video_track()
        if twcc:
            track = dataclasses.replace(track, bandwidth_feedback="transport-cc")
        fwd.add_track(track, 0.0)
        for i, (m, c) in enumerate(zip(mappings, codecs, strict=True)):
            fwd.add_participant(f"s{i}")
            fwd.subscribe(subscription(f"s{i}", ssrc=0xA000 + i, codecs=CODECS[c],
                                       extensions=MAPPINGS[m]), 0.0)  # fmt: skip
        fwd.rtcp_to_send()
        pair.append(fwd)
    return pair[0], pair[1]


# One step: (seq delta, ts delta, extension form, payload type, late subscriber joins, dt).
steps = st.lists(
    st.tuples(
        st.sampled_from([1, 1, 1, 2, 5, 0, -3, 40000, -20]),
        st.integers(0, 6000),
        st.sampled_from(["chrome", "none", "two-byte", "csrc", "truncated", "mid-only"]),
        st.sampled_from([96, 96, 96, 97, 120]),
        st.booleans(),
        st.floats(0.0, 0.2),
    ),
    min_size=1,
    max_size=40,
)


def _packet(seq: int, ts: int, form: str, pt: int, rng: random.Random) -> bytes:
    payload = bytes(rng.randrange(256) for _ in range(rng.choice((1, 30, 1100))))
    if form == "chrome":
        return rtp(seq, ts, pt=pt, payload=payload, ext={1: b"0", 2: b"\x01\x02\x03",
                                                         3: b"\x00\x07"})  # fmt: skip
    if form == "mid-only":
        return rtp(seq, ts, pt=pt, payload=payload, ext={1: b"0"})
    if form == "two-byte":  # an element longer than 16 bytes forces the two-byte form
        return rtp(seq, ts, pt=pt, payload=payload, ext={1: b"0" * 17, 3: b"\x00\x07"})
    packet = bytearray(rtp(seq, ts, pt=pt, payload=payload))
    if form == "csrc":  # one CSRC: the transport-cc element cannot go in front
        packet[0] |= 1
        packet[12:12] = b"\x00\x00\x00\x09"
    elif form == "truncated":  # says it has an extension block, and has none
        packet[0] |= 0x10
        del packet[12:]
        packet += b"\xbe\xde\x00\x05"
    return bytes(packet)


@settings(max_examples=120, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(MAPPINGS) - 1), st.integers(0, 1)), min_size=1, max_size=5
    ),
    steps,
    st.integers(0, 2**32 - 1),
)
def test_compiled_fan_out_matches_the_reference(
    subs: list[tuple[int, int]], plan: list[tuple[int, int, str, int, bool, float]], seed: int
) -> None:
    fast, ref = _pair([m for m, _ in subs], [c for _, c in subs])
    _replay(fast, ref, len(subs), plan, random.Random(seed), whole=False)


def _replay(fast: Forwarder, ref: Forwarder, joined: int,
            plan: list[tuple[int, int, str, int, bool, float]], rng: random.Random, *,
            whole: bool) -> None:
    """Route ``plan``'s packets through both forwarders (``whole``: the compiled route too, and
    the publisher's state compared as well) and compare everything after each packet."""
    seq, ts, now = rng.randrange(0x10000), rng.randrange(2**32), 1.0
    for delta, ts_step, form, pt, join, dt in plan:
        seq = (seq + delta) & 0xFFFF
        ts = (ts + ts_step) & 0xFFFFFFFF
        now += dt
        if join:  # a subscription that starts mid-stream: its first copy re-anchors (slow path)
            for fwd in (fast, ref):
                fwd.add_participant(f"s{joined}")
                fwd.subscribe(subscription(f"s{joined}", ssrc=0xA000 + joined,
                                           extensions=MAPPINGS[joined % len(MAPPINGS)]),
                              now)  # fmt: skip
                fwd.rtcp_to_send()
            joined += 1
        packet = _packet(seq, ts, form, pt, rng)
        assert _route(fast, True, packet, now, whole=whole) == _route(ref, False, packet, now)
        assert fast.rtp_to_send() == ref.rtp_to_send()
        assert _state(fast) == _state(ref)
        if whole:
            assert _publisher_state(fast) == _publisher_state(ref)


def _publisher_state(fwd: Forwarder) -> dict[str, object]:
    """What the compiled route writes besides the subscriptions: the publisher's streams
    (sequence and jitter state, NACK cache, octets), its TWCC recorder and the counters."""
    part = fwd._participants["pub"]
    streams = {}
    for ssrc, stream in part.streams.items():
        rs = stream.receive
        cache = stream.cache
        streams[ssrc] = {
            "receive": {name: getattr(rs, name) for name in type(rs).__slots__},
            "cache": None if cache is None else (list(cache.packets), list(cache.exts)),
            "octets": stream.octets,
            "gaps": None if stream.gaps is None else sorted(stream.gaps.missing.items()),
        }
    twcc = part.twcc
    recorder = None if twcc is None else {name: getattr(twcc, name) for name in twcc.__slots__}
    return {"streams": streams, "twcc": recorder, "counters": dict(vars(fwd.counters))}


@settings(max_examples=120, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(MAPPINGS) - 1), st.integers(0, 1)), min_size=0, max_size=4
    ),
    steps,
    st.integers(0, 2**32 - 1),
)
def test_compiled_route_matches_the_reference(
    subs: list[tuple[int, int]], plan: list[tuple[int, int, str, int, bool, float]], seed: int
) -> None:
    """The whole route (sequence bookkeeping, jitter, TWCC record, cache, copies) compiled
    against route_rtp's reference, over in-order packets (which it takes), gaps, duplicates,
    reordering, restarts, bad payload types, malformed blocks and late joiners (which it
    hands back, or stops the fan-out on)."""
    fast, ref = _pair([m for m, _ in subs], [c for _, c in subs], twcc=True)
    assert fast._participants["pub"].twcc is not None
    _replay(fast, ref, len(subs), plan, random.Random(seed), whole=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 3), st.binary(max_size=80)),
                min_size=1, max_size=12))
def test_compiled_route_matches_the_reference_on_arbitrary_bytes(
    packets: list[tuple[int, int, bytes]],
) -> None:
    """A publisher controls its packets' plaintext: arbitrary bytes behind a fixed header of
    the known stream (any flags, CSRC count, extension and padding bits) route the same way
    through the compiled route and the reference, whatever they claim about their layout."""
    fast, ref = _pair([3, 4, 1], [0, 0, 0], twcc=True)
    for i, (b0_low, seq_step, tail) in enumerate(packets):
        head = bytes([0x80 | (b0_low & 0x3F), 96, 0, (7 + i * seq_step) & 0xFF])
        packet = head + (3000 * i).to_bytes(4, "big") + (0x1000).to_bytes(4, "big") + tail
        now = 1.0 + i / 50
        assert _route(fast, True, packet, now, whole=True) == _route(ref, False, packet, now)
        assert fast.rtp_to_send() == ref.rtp_to_send()
        assert _state(fast) == _state(ref)
        assert _publisher_state(fast) == _publisher_state(ref)


def test_the_compiled_route_takes_in_order_packets_whole() -> None:
    """Not vacuous: in-order Chrome-shaped packets never reach the Python route."""
    fast, _ = _pair([3, 4], [0, 0], twcc=True)
    rng = random.Random(3)
    taken = 0
    for i in range(40):
        packet = _packet(500 + i, 3000 * i, "chrome", 96, rng)
        part = fast._participants["pub"]
        r = route_compiled(part, packet, 1.0 + i / 30, fast._rtp_out, fast.counters,
                           subscriber_links.RING_MASK, 1 << 14)  # fmt: skip
        if r >= 0 or r < -1:
            taken += 1
        else:
            fast.route_rtp("pub", packet, 1.0 + i / 30)
    assert taken == 39  # all but the first, which starts the stream's numbering
    assert fast.counters.rtp_received == 40


def test_the_compiled_loop_runs_in_the_steady_state() -> None:
    """Not a vacuous comparison: with Chrome-shaped packets and transport-cc subscribers, the
    compiled loop queues the copies itself (Python's ``_copy`` runs only for first copies)."""
    fast, ref = _pair([3, 3, 5], [0, 1, 0])
    calls = 0
    reference = routing._copy

    def counting(*args: object) -> int:
        nonlocal calls
        calls += 1
        return reference(*args)  # type: ignore[arg-type]

    rng = random.Random(1)
    routing._copy = counting  # type: ignore[assignment]
    try:
        for i in range(50):
            packet = _packet(100 + i, 3000 * i, "chrome", 96, rng)
            assert _route(fast, True, packet, 1.0 + i / 30) == 3
    finally:
        routing._copy = reference  # type: ignore[assignment]
    assert calls == 3  # one re-anchoring copy per subscription, then none
    for i in range(50):
        _route(ref, False, _packet(100 + i, 3000 * i, "chrome", 96, random.Random(1)), 1.0)
    assert len(fast.rtp_to_send()) == 150


@pytest.mark.parametrize("mapping", [2, 4])
def test_transport_cc_tails_are_computed_in_the_compiled_loop(mapping: int) -> None:
    """Subscribers whose transport-cc tail needs no Python: other elements stripped (2) or ids
    moved (4) over Chromium's one-byte block take one compiled call per packet once anchored
    (before, each packet stopped once for Python to prepare the tail); the copies match."""
    fast, ref = _pair([mapping, mapping], [0, 0])
    calls = 0

    def counting(*args: object) -> int:
        nonlocal calls
        calls += 1
        return compiled(*args)

    rng = random.Random(2)
    packets = [_packet(200 + i, 3000 * i, "chrome", 96, rng) for i in range(30)]
    _route(fast, True, packets[0], 1.0)
    _route(ref, False, packets[0], 1.0)
    saved, saved_route = routing._fan_out, forwarder_module._route
    routing._fan_out, forwarder_module._route = counting, None
    try:
        for i, packet in enumerate(packets[1:], start=1):
            assert fast.route_rtp("pub", packet, 1.0 + i / 30) == 2
    finally:
        routing._fan_out, forwarder_module._route = saved, saved_route
    for i, packet in enumerate(packets[1:], start=1):
        _route(ref, False, packet, 1.0 + i / 30)
    assert calls == len(packets) - 1
    assert fast.rtp_to_send() == ref.rtp_to_send()
    assert _state(fast) == _state(ref)


def test_bad_arguments_raise_instead_of_crashing() -> None:
    with pytest.raises(TypeError):
        compiled([], 0)
    with pytest.raises(TypeError):
        compiled(None, 0, 0, 0, 0, 0x80, 96, b"x" * 12, 16, 0, 0.0, 8191, [], {}, {})
    with pytest.raises(ValueError):
        compiled([], 0, 0, 0, 0, 0x80, 96, b"short", 16, 0, 0.0, 8191, [], {}, {})
    with pytest.raises(ValueError):
        compiled([], 0, 0, 0, 0, 0x80, 300, b"x" * 12, 16, 0, 0.0, 8191, [], {}, {})


# -- the TWCC feedback loop -----------------------------------------------------------------


def _feedback_link(sent: int) -> SubscriberLink:
    """A link that has numbered ``sent`` packets (sizes and send times all different)."""
    link = SubscriberLink(Participant("s"), LinkConfig(), 1_000_000, 10_000_000)
    for i in range(sent):
        link.take(1000 + i % 500, 0.001 * i)
    return link


class _Recorder:
    """Stands in for the estimator: what on_twcc hands it is the loop's whole output."""

    def __init__(self, seen: list[object]) -> None:
        self.seen = seen

    def on_feedback(self, results: list[tuple[float, float | None, int]], now: float) -> None:
        self.seen.append(results)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 70000), st.integers(-(2**23), 2**23 - 1), st.data())
def test_compiled_twcc_loop_matches_the_reference(
    sent: int, reference: int, data: st.DataObject
) -> None:
    """Feedback about packets the link did send (across 16-bit wraps of the numbers), with
    every status kind, small and large deltas: both loops hand the estimator the same list."""
    back = data.draw(st.integers(1, min(sent, 400)))
    statuses = data.draw(st.lists(st.sampled_from([0, 1, 1, 1, 2, 3]), min_size=1, max_size=back))
    deltas = tuple(
        data.draw(st.integers(0, 255) if s == 1 else st.integers(-0x8000, 0x7FFF))
        for s in statuses
        if s in (1, 2)
    )
    fb = TransportCc(1, 2, (sent - back) & 0xFFFF, reference, 0, bytes(statuses), deltas)
    outputs: list[list[object]] = []
    for compiled_loop in (twcc_compiled, None):
        seen: list[object] = []
        link = _feedback_link(sent)
        link.estimator = _Recorder(seen)  # type: ignore[assignment]
        saved = subscriber_links._twcc_results
        subscriber_links._twcc_results = compiled_loop
        try:
            assert link.on_twcc(fb, 5.0)
        finally:
            subscriber_links._twcc_results = saved
        assert len(seen) == 1 and len(seen[0]) == sum(s != 3 for s in statuses)  # type: ignore[arg-type]
        outputs.append(seen)
    assert outputs[0] == outputs[1]


def test_compiled_twcc_loop_refuses_bad_inputs() -> None:
    with pytest.raises(TypeError):
        twcc_compiled([1], (), 0.0, 0, [0.0], [0], 0)
    # Deltas that run out: the caller's reference loop decides (None).
    assert twcc_compiled(b"\x01\x01", (3,), 0.0, 0, [0.0] * 4, [0] * 4, 3) is None
    # A mask beyond the rings: None as well, never an out-of-bounds read.
    assert twcc_compiled(b"\x00", (), 0.0, 0, [0.0] * 4, [0] * 4, 7) is None


@st.composite
def _extension_packets(draw: st.DrawFn) -> bytes:
    """RTP-shaped bytes around an extension block: either form, ids and sizes of any value
    (valid or not), padding, declared lengths that over- or under-run, truncation."""
    csrcs = draw(st.integers(0, 15))
    b0 = 0x80 | draw(st.sampled_from([0x10, 0x10, 0x10, 0x00, 0x30])) | csrcs
    profile = draw(st.sampled_from([0xBEDE, 0xBEDE, 0x1000, 0x100F, 0x1010, 0x0000]))
    body = b""
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 3))
        if kind == 0:
            body += b"\x00"  # padding
        elif profile == 0xBEDE:
            eid = draw(st.one_of(st.sampled_from([3, 5]), st.integers(1, 15)))
            size = draw(st.one_of(st.just(1), st.integers(0, 15)))
            value = draw(st.binary(min_size=size + 1, max_size=size + 1))
            body += bytes([(eid << 4) | size]) + value
        else:
            eid = draw(st.one_of(st.sampled_from([3, 5]), st.integers(1, 255)))
            size = draw(st.one_of(st.just(2), st.integers(0, 6)))
            body += bytes([eid, size]) + draw(st.binary(min_size=size, max_size=size))
    words = (len(body) + 3) // 4 + draw(st.sampled_from([0, 0, 0, 0, -1, 1]))
    block = profile.to_bytes(2, "big") + max(0, words).to_bytes(2, "big") + body
    block += bytes(-len(block) % 4)
    packet = bytes([b0, 96]) + bytes(10) + bytes(4 * csrcs) + block + draw(st.binary(max_size=8))
    truncate = draw(st.integers(0, 4)) == 0
    return packet[: draw(st.integers(0, len(packet)))] if truncate else packet


@settings(max_examples=600, deadline=None)
@given(
    st.one_of(_extension_packets(), st.binary(max_size=80)),
    st.one_of(st.sampled_from([3, 5]), st.integers(-3, 300)),
)
def test_compiled_transport_seq_reader_matches_the_reference(packet: bytes, ext_id: int) -> None:
    expected = py_read_transport_seq(packet, ext_id)
    assert read_seq_compiled(packet, ext_id) == expected
    assert read_seq_compiled(bytearray(packet), ext_id) == expected
    assert read_seq_compiled(memoryview(packet), ext_id) == expected


def test_compiled_transport_seq_reader_finds_chromium_numbers_and_refuses_bad_arguments() -> None:
    one_byte = bytes([0x90, 96]) + bytes(10) + bytes([0xBE, 0xDE, 0, 1, 0x31, 0x12, 0x34, 0])
    two_byte = bytes([0x90, 96]) + bytes(10) + bytes([0x10, 0, 0, 1, 3, 2, 0, 7])
    assert read_seq_compiled(one_byte, 3) == 0x1234 == py_read_transport_seq(one_byte, 3)
    assert read_seq_compiled(two_byte, 3) == 7 == py_read_transport_seq(two_byte, 3)
    assert read_seq_compiled(one_byte, 1 << 70) == -1 == py_read_transport_seq(one_byte, 1 << 70)
    with pytest.raises(TypeError):
        read_seq_compiled("not bytes", 3)
    with pytest.raises(TypeError):
        read_seq_compiled(one_byte)
