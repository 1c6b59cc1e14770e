"""Properties: continuity across arbitrary source switches, and no state left after churn."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from router.forwarding import ForwarderStats
from router.rtp import GenericNack, Pli, RtpPacket, SenderReport
from tests.forwarding.helpers import (
    audio_track,
    make_forwarder,
    parsed,
    room,
    rtp,
    subscription,
    video_track,
)

# A segment: (ssrc, first seq, first ts, packet count, gap in seconds before it starts).
segments = st.lists(
    st.tuples(
        st.sampled_from([0x1000, 0x2000, 0x3000]),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFFFFFF),
        st.integers(1, 30),
        st.floats(0.0, 5.0),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150)
@given(segments)
def test_in_order_input_gives_consecutive_seqs_and_monotone_timestamps(
    plan: list[tuple[int, int, int, int, float]],
) -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    now = 0.0
    sent = 0
    previous: tuple[int, int, int] | None = None
    for ssrc, seq0, ts0, count, gap in plan:
        unconfirmed = False
        if previous is not None and previous[0] == ssrc:
            # Same sender: a small jump would be real loss (a gap the receiver must see), and a
            # small rewind is read as late packets (by design: RTX repairs look like that), so
            # continue exactly unless the jump is large enough to count as a restart.
            jump = (seq0 - previous[1]) & 0xFFFF
            if jump <= 3000 or jump >= 0x10000 - 512:
                seq0, ts0 = previous[1], previous[2] + round(gap * 90000)
            else:
                # A restart needs a second packet to confirm it; a lone packet after a big jump
                # is held back and the forwarder keeps following the old numbering.
                unconfirmed = count == 1
        if not unconfirmed:
            previous = (ssrc, (seq0 + count) & 0xFFFF, ts0 + 3000 * count)
        now += gap
        for i in range(count):
            # Every segment announces its MID, as a restarted browser sender does.
            packet = rtp(seq0 + i, ts0 + 3000 * i, ssrc=ssrc, ext={1: b"0"})
            sent += fwd.route_rtp("pub", packet, now)
            now += 0.01
    out = parsed(fwd.rtp_to_send(), "s0")
    assert len(out) == sent
    seqs = [p.sequence_number for p in out]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    ts = [p.timestamp for p in out]
    assert all((b - a) & 0xFFFFFFFF < 1 << 31 for a, b in itertools.pairwise(ts))
    assert {p.ssrc for p in out} <= {0xA000}
    # Only the first packet of a same-SSRC jump (waiting for confirmation) may be held back.
    total = sum(count for *_, count, _ in plan)
    assert sent >= total - len(plan)


@settings(max_examples=100)
@given(st.lists(st.tuples(st.integers(0, 40), st.booleans()), min_size=1, max_size=120))
def test_reordered_and_duplicated_input_never_emits_a_seq_twice(
    arrivals: list[tuple[int, bool]],
) -> None:
    fwd = make_forwarder()
    room(fwd, 1)
    for i, (offset, dup) in enumerate(arrivals):
        packet = rtp(65520 + offset, 3000 * offset)
        fwd.route_rtp("pub", packet, i * 0.001)
        if dup:
            fwd.route_rtp("pub", packet, i * 0.001)
    out = parsed(fwd.rtp_to_send(), "s0")
    seqs = [p.sequence_number for p in out]
    assert len(seqs) == len(set(seqs))
    first = arrivals[0][0]
    # Each forwarded packet keeps its distance from the first one (gaps preserved for NACK).
    assert all(
        (p.sequence_number - out[0].sequence_number) & 0xFFFF == (off - first) & 0xFFFF
        for p, off in zip(out, _accepted(arrivals), strict=True)
    )


def _accepted(arrivals: list[tuple[int, bool]]) -> list[int]:
    seen: set[int] = set()
    first = arrivals[0][0]
    out = []
    for offset, _ in arrivals:
        if offset not in seen and offset >= first:
            seen.add(offset)
            out.append(offset)
    return out


ops = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "join",
                "leave",
                "publish",
                "unpublish",
                "subscribe",
                "unsubscribe",
                "packet",
                "rtcp",
                "timer",
            ]
        ),
        st.integers(0, 3),
        st.integers(0, 3),
    ),
    max_size=60,
)


@settings(max_examples=150)
@given(ops)
def test_churn_leaves_no_state(plan: list[tuple[str, int, int]]) -> None:
    fwd = make_forwarder()
    now = 0.0
    people: set[str] = set()
    for op, a, b in plan:
        now += 0.1
        who, _other = f"p{a}", f"p{b}"
        track = f"t{b}"
        if op == "join" and who not in people:
            fwd.add_participant(who)
            people.add(who)
        elif op == "leave" and who in people:
            fwd.remove_participant(who, now)
            people.discard(who)
        elif op == "publish" and who in people and track not in fwd._tracks:
            spec = (
                video_track(track, who, ssrc=0x100 * (b + 1), rtx_ssrc=0x100 * (b + 1) + 1)
                if b % 2
                else audio_track(track, who, ssrc=0x100 * (b + 1))
            )
            fwd.add_track(spec, now)
        elif op == "unpublish" and track in fwd._tracks and fwd._tracks[track].publisher.id == who:
            fwd.remove_track(track, now)
        elif op == "subscribe" and who in people:
            if track not in fwd._participants[who].downstreams:
                fwd.subscribe(subscription(who, track, 0xA000 + b), now)
        elif op == "unsubscribe" and who in people:
            if track in fwd._participants[who].downstreams:
                fwd.unsubscribe(who, track, now)
        elif op == "packet":
            pt = 96 if b % 2 else 111
            fwd.route_rtp(who, rtp(int(now * 10), ssrc=0x100 * (b + 1), pt=pt), now)
        elif op == "rtcp":
            fwd.receive_rtcp(who, Pli(1, 0xA000 + b).build(), now)
            fwd.receive_rtcp(who, GenericNack.from_seqs(1, 0xA000 + b, [1, 2]).build(), now)
            fwd.receive_rtcp(who, SenderReport(0x100 * (b + 1), 1 << 40, 0, 0, 0).build(), now)
        elif op == "timer":
            fwd.handle_timer(now + 2)
    for who in list(people):
        fwd.remove_participant(who, now)
    stats: ForwarderStats = fwd.stats()
    assert stats.state_entries == 0, stats
    assert stats.queued_rtp == 0 and stats.queued_rtcp == 0
    assert fwd.get_timer() is None


def test_outgoing_packets_always_parse() -> None:
    fwd = make_forwarder()
    room(fwd, 2)
    for i in range(5):
        fwd.route_rtp("pub", rtp(i, ext={1: b"0", 2: b"abc", 3: b"\x00\x01", 9: b"?"}), 0)
    for _, data in fwd.rtp_to_send():
        RtpPacket.parse(data)
