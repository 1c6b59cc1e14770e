"""Simulcast: keyframe-aligned switches that the decoder cannot see, and the layer choice."""

from __future__ import annotations

import itertools
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from router.forwarding import Forwarder, LayerSpec
from router.forwarding.specs import TRANSPORT_WIDE_CC
from router.forwarding.subscriber_links import SubscriberLink
from router.forwarding.vp8 import vp8_info
from router.rtp import Pli, RtpPacket
from tests.forwarding.helpers import make_forwarder, rtcp_for, rtp, subscription, video_track

SSRCS = (0x100, 0x200, 0x300)
HEIGHTS = (180, 360, 720)


def vp8_payload(pid: int, tl0: int, *, start: bool, keyframe: bool, layer: int) -> bytes:
    """A Chromium-shaped descriptor (15-bit picture id, TL0PICIDX, T) and frame start."""
    desc = bytes([0x90 if start else 0x80, 0xE0, 0x80 | (pid >> 8), pid & 0xFF, tl0, 0x00])
    if not start:
        return desc + bytes([layer]) * 20
    if keyframe:
        height = HEIGHTS[layer]
        head = bytes([0x10, 0, 0]) + b"\x9d\x01\x2a" + struct.pack("<HH", height * 16 // 9, height)
    else:
        head = bytes([0x01, 0, 0])
    return desc + head + bytes([layer]) * 20


def simulcast_room(
    fwd: Forwarder, subscribers: int = 1, extensions: dict[str, int] | None = None
) -> None:
    fwd.add_participant("pub")
    layers = tuple(LayerSpec(rid=r, ssrc=s) for r, s in zip("qhf", SSRCS, strict=True))
    fwd.add_track(video_track(ssrc=None, layers=layers), 0.0)
    for i in range(subscribers):
        fwd.add_participant(f"s{i}")
        fwd.subscribe(subscription(f"s{i}", ssrc=0xA000 + i, extensions=extensions), 0.0)
    fwd.rtcp_to_send()


class Source:
    """One simulcast encoder: its own sequence, timestamp and picture id numbering."""

    def __init__(self, layer: int, seq: int, ts: int, pid: int, tl0: int) -> None:
        self.layer, self.seq, self.ts, self.pid, self.tl0 = layer, seq, ts, pid, tl0

    def frame(self, keyframe: bool, packets: int) -> list[bytes]:
        out = []
        for i in range(packets):
            payload = vp8_payload(self.pid, self.tl0, start=i == 0, keyframe=keyframe,
                                  layer=self.layer)  # fmt: skip
            out.append(rtp(self.seq, self.ts, SSRCS[self.layer], payload=payload,
                           marker=i == packets - 1))  # fmt: skip
            self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + 3000) & 0xFFFFFFFF
        self.pid = (self.pid + 1) & 0x7FFF
        self.tl0 = (self.tl0 + 1) & 0xFF
        return out


frames = st.lists(
    st.tuples(
        st.lists(st.tuples(st.booleans(), st.integers(1, 3)), min_size=3, max_size=3),
        st.one_of(st.none(), st.integers(0, 2)),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=80, deadline=None)
@given(
    frames,
    st.lists(
        st.tuples(
            st.integers(0, 0xFFFF),
            st.integers(0, 0xFFFFFFFF),
            st.integers(0, 0x7FFF),
            st.integers(0, 255),
        ),
        min_size=3,
        max_size=3,
    ),
)
def test_switches_keep_one_continuous_stream(
    script: list[tuple[list[tuple[bool, int]], int | None]],
    bases: list[tuple[int, int, int, int]],
) -> None:
    """Across any sequence of switches: sequence numbers +1 each packet modulo 2**16, no
    duplicates, timestamps never going back, picture ids +1 each frame, and a change of
    source only ever at the first packet of a keyframe."""
    fwd = make_forwarder()
    simulcast_room(fwd)
    sources = [Source(i, *bases[i]) for i in range(3)]
    received: list[RtpPacket] = []
    now = 0.0
    for layer_frames, switch_to in script:
        if switch_to is not None:
            fwd.select_layer("s0", "v", switch_to, now)
        for src, (keyframe, packets) in zip(sources, layer_frames, strict=True):
            for packet in src.frame(keyframe, packets):
                fwd.route_rtp("pub", packet, now)
        received += [RtpPacket.parse(d) for pid, d in fwd.rtp_to_send() if pid == "s0"]
        now += 1 / 30
    seqs = [p.sequence_number for p in received]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
    tss = [p.timestamp for p in received]
    assert all((b - a) & 0xFFFFFFFF < 0x80000000 for a, b in itertools.pairwise(tss))
    previous_layer = None
    last_pid = None
    for packet in received:
        info = vp8_info(packet.payload, 0, len(packet.payload))
        assert info is not None
        layer = packet.payload[-1]
        if layer != previous_layer and previous_layer is not None:
            assert info.keyframe, "switched to another layer without a keyframe"
        previous_layer = layer
        if last_pid is not None:
            assert (info.pid - last_pid) & 0x7FFF in (0, 1)
        if packet.payload[0] & 0x10:
            assert last_pid is None or (info.pid - last_pid) & 0x7FFF == 1
        last_pid = info.pid


def test_switch_waits_for_a_keyframe_and_asks_for_one() -> None:
    fwd = make_forwarder()
    simulcast_room(fwd)
    sources = [Source(i, 100 * i, 0, 10 * i, 0) for i in range(3)]
    for src in sources:
        for p in src.frame(True, 2):
            fwd.route_rtp("pub", p, 0.0)
    assert fwd.layer_of("s0", "v") == (0, "q")
    fwd.rtcp_to_send()
    fwd.select_layer("s0", "v", 2, 0.6)
    plis = [p for p in rtcp_for(fwd.rtcp_to_send(), "pub") if isinstance(p, Pli)]
    assert [p.media_ssrc for p in plis] == [SSRCS[2]]
    for p in sources[2].frame(False, 2):
        fwd.route_rtp("pub", p, 0.7)
    assert fwd.layer_of("s0", "v") == (0, "q")  # not without a keyframe
    for p in sources[2].frame(True, 2):
        fwd.route_rtp("pub", p, 0.8)
    assert fwd.layer_of("s0", "v") == (2, "f")


def _feed(fwd: Forwarder, sources: list[Source], start: float, seconds: float) -> float:
    """30 fps on every layer with rates about 150/500/1500 kbit/s, keyframes on request."""
    now = start
    sizes = (1, 2, 6)
    while now < start + seconds:
        wanted = {p.media_ssrc for p in rtcp_for(fwd.rtcp_to_send(), "pub") if isinstance(p, Pli)}
        for src in sources:
            for p in src.frame(SSRCS[src.layer] in wanted, sizes[src.layer]):
                fwd.route_rtp("pub", p + bytes(600), now)
        fwd.rtp_to_send()
        due = fwd.get_timer()
        if due is not None and due <= now:
            fwd.handle_timer(now)
        now += 1 / 30
    return now


def _room_with_a_5_mbps_estimate() -> tuple[Forwarder, list[Source], SubscriberLink]:
    fwd = make_forwarder()
    simulcast_room(fwd)
    sources = [Source(i, 1000 * i, 0, 100 * i, 0) for i in range(3)]
    link = fwd.subscriber_link(fwd._participants["s0"])
    assert link is not None
    link.estimator.on_remb(5_000_000)
    link.estimator.assume(5e6)
    return fwd, sources, link


def test_layer_follows_the_estimate_and_the_requested_size() -> None:
    fwd, sources, link = _room_with_a_5_mbps_estimate()
    now = _feed(fwd, sources, 0.0, 4.0)
    assert fwd.layer_of("s0", "v")[1] == "f"  # up, after holding, one layer at a time
    fwd.set_max_height("s0", "v", 300, now)
    now = _feed(fwd, sources, now, 1.0)
    assert fwd.layer_of("s0", "v")[1] == "h"  # the smallest layer covering 300 px
    fwd.set_max_height("s0", "v", 0, now)
    link.estimator.on_remb(200_000)  # congestion: down within a second
    _feed(fwd, sources, now, 1.0)
    assert fwd.layer_of("s0", "v")[1] == "q"
    assert fwd.chooser.switch_requests >= 3


def test_probe_sends_redundant_copies_numbered_for_feedback() -> None:
    fwd = make_forwarder()
    simulcast_room(fwd, extensions={TRANSPORT_WIDE_CC: 3})
    sources = [Source(i, 1000 * i, 0, 100 * i, 0) for i in range(3)]
    link = fwd.subscriber_link(fwd._participants["s0"])
    assert link is not None
    link.estimator.assume(300_000)
    _feed(fwd, sources, 0.0, 1.5)
    assert fwd.chooser.probes >= 1 and fwd.counters.probe_packets > 0
    assert fwd.layer_of("s0", "v")[1] == "q"  # the probe alone does not switch


def _at_top_layer_just_switched() -> tuple[Forwarder, list[Source], float]:
    fwd, sources, _ = _room_with_a_5_mbps_estimate()
    now = 0.0
    while fwd.layer_of("s0", "v")[1] != "f":
        now = _feed(fwd, sources, now, 0.1)
        assert now < 10, "never reached the top layer"
    sim = fwd._participants["s0"].downstreams["v"].sim
    assert sim is not None and now - sim.up_at < 0.5
    return fwd, sources, now


def test_one_step_down_right_after_a_switch_up_waits_a_deeper_fall_does_not() -> None:
    """The new layer's keyframe burst can read as congestion: one step back down waits
    DOWN_SETTLE after a switch up (no flapping), a fall past the layer below is acted on."""
    fwd, sources, now = _at_top_layer_just_switched()
    link = fwd.subscriber_link(fwd._participants["s0"])
    assert link is not None
    link.estimator.on_remb(700_000)  # h fits, f does not
    now = _feed(fwd, sources, now, 0.3)
    assert fwd.layer_of("s0", "v")[1] == "f"
    _feed(fwd, sources, now, 1.2)
    assert fwd.layer_of("s0", "v")[1] == "h"

    fwd, sources, now = _at_top_layer_just_switched()
    link = fwd.subscriber_link(fwd._participants["s0"])
    assert link is not None
    link.estimator.on_remb(100_000)  # only q fits
    _feed(fwd, sources, now, 0.4)
    assert fwd.layer_of("s0", "v")[1] == "q"
