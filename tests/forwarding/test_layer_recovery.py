"""A simulcast subscriber's layer through a capacity cut and its lifting, in simulated time.

The subscriber's link is a FIFO bottleneck with a drop-tail buffer (what `regio impair
--rate` does) answered with real transport-cc feedback. Everything the router numbers must
reach the wire: a transport-wide number taken for a packet that is then not sent (a
retransmission over the repair budget, a probe copy past the probe's budget) reads as a lost
packet in the feedback, and that phantom loss once kept every probe failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from router.forwarding import Forwarder
from router.forwarding.publisher_feedback import TwccRecorder
from router.forwarding.specs import TRANSPORT_WIDE_CC
from router.forwarding.subscriber_links import SubscriberLink
from router.forwarding.transport_seq import read_transport_seq
from router.rtp import GenericNack, Pli, RtpPacket
from tests.forwarding.helpers import make_forwarder, rtcp_for
from tests.forwarding.test_layers import SSRCS, Source, simulcast_room

FRAME = 1 / 30
PACKETS_PER_FRAME = (1, 3, 8)  # about 290 kbit/s, 830 kbit/s and 2.2 Mbit/s at 30 fps
BUFFER = 0.25  # seconds of queue before the bottleneck drops


@dataclass
class Link:
    """The subscriber's downlink and its feedback."""

    fwd: Forwarder
    recorder: TwccRecorder = field(default_factory=lambda: TwccRecorder(3))
    queue_free: float = 0.0
    numbers: list[int] = field(default_factory=list)
    sent: list[RtpPacket] = field(default_factory=list)

    def carry(self, now: float, capacity: float) -> None:
        for who, data in self.fwd.rtp_to_send():
            if who != "s0":
                continue
            self.numbers.append(read_transport_seq(data, 3))
            self.sent.append(RtpPacket.parse(data))
            start = max(now, self.queue_free)
            if start - now > BUFFER:
                continue  # dropped at the bottleneck
            self.queue_free = start + len(data) * 8 / capacity
            self.recorder.record(data, self.queue_free + 0.02)

    def feedback(self, now: float) -> None:
        for fb in self.recorder.feedback(0x5555):
            self.fwd.receive_rtcp("s0", fb, now + 0.02)


Layers = list[tuple[float, str]]


def run(schedule: list[tuple[float, float]], seconds: float) -> tuple[Link, Layers]:
    """Simulcast at 30 fps through a bottleneck whose capacity follows ``schedule``
    (``(from time, bits/s)``); returns the link and the subscriber's layer over time."""
    fwd = make_forwarder()
    simulcast_room(fwd, extensions={TRANSPORT_WIDE_CC: 3})
    sources = [Source(i, 1000 * i, 0, 100 * i, 0) for i in range(3)]
    link = Link(fwd)
    layers: Layers = []
    now, next_feedback = 0.0, 0.05
    while now < seconds:
        capacity = [c for t, c in schedule if t <= now][-1]
        wanted = {p.media_ssrc for p in rtcp_for(fwd.rtcp_to_send(), "pub") if isinstance(p, Pli)}
        for src in sources:
            for packet in src.frame(SSRCS[src.layer] in wanted, PACKETS_PER_FRAME[src.layer]):
                fwd.route_rtp("pub", packet + bytes(1100), now)
        link.carry(now, capacity)
        due = fwd.get_timer()
        if due is not None and due <= now:
            fwd.handle_timer(now)
            link.carry(now, capacity)
        if now >= next_feedback:
            link.feedback(now)
            next_feedback += 0.05
        layers.append((now, fwd.layer_of("s0", "v")[1] or "-"))
        now += FRAME
    return link, layers


def _first(layers: Layers, after: float, wanted: str) -> float:
    return next(t for t, layer in layers if t >= after and layer in wanted) - after


def test_capacity_cut_moves_the_layer_down_and_lifting_it_brings_it_back() -> None:
    cut, lift = 8.0, 16.0
    link, layers = run([(0.0, 20e6), (cut, 300e3), (lift, 20e6)], 32.0)
    assert _first(layers, 0.0, "f") < cut, "the clean link reached the top layer"
    assert _first(layers, cut, "q") <= 2.0, "down within 2 s of the cut"
    assert _first(layers, lift, "hf") <= 15.0, "up within 15 s of the lifting"
    assert layers[-1][1] == "f"
    subscriber_link = link.fwd.subscriber_link(link.fwd._participants["s0"])
    assert isinstance(subscriber_link, SubscriberLink) and subscriber_link.probes_ok >= 2
    # Every number the router took went out, once, in order (media, probes, repairs alike).
    assert link.numbers == list(range(len(link.numbers)))


def test_retransmissions_over_the_budget_take_no_number() -> None:
    link, layers = run([(0.0, 20e6)], 5.0)
    assert layers[-1][1] == "f"
    fwd = link.fwd
    ssrc = link.sent[-1].ssrc
    seqs = sorted({p.sequence_number for p in link.sent if p.ssrc == ssrc})[-64:]
    now = 5.0
    for _ in range(4):  # a storm: far more than the repair budget allows
        fwd.receive_rtcp("s0", GenericNack.from_seqs(1, ssrc, seqs).build(), now)
        link.carry(now, 20e6)
        now += 1.0  # past the RTT, so the same numbers are served again
    assert fwd.counters.rtx_over_budget > 0 and fwd.counters.nack_served > 0
    assert link.numbers == list(range(len(link.numbers)))
