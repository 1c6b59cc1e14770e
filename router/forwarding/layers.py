"""Simulcast layer choice per subscriber: which layer fits its estimate and the size it asked
for, when to switch, and how to make a switch invisible to its decoder.

* Choice (:class:`LayerChooser`, on a 200 ms tick): the subscriber's estimate minus what its
  other streams take is shared among its simulcast subscriptions; each gets the highest
  receiving layer whose measured rate fits its share and whose height does not exceed the
  smallest layer covering the height it asked for (``video_size`` in signaling).
* Hysteresis: a lower choice is acted on at once (the estimate already needed congestion to
  fall); a higher one only after it has held for ``up_hold`` seconds. A higher layer the
  estimate cannot yet justify is probed for: for half a second the router sends redundant
  RTX copies of recent packets at the missing rate, and the acknowledged rate during the probe
  becomes a floor for the estimate if no congestion showed. Failed probes back off.
* Switching (:func:`complete_switches`): the subscription waits on the target layer's stream
  and moves over on the first packet of a keyframe there (a PLI asks for one); sequence
  numbers and timestamps then continue through the usual anchor, and :func:`rebase_vp8`
  continues the VP8 picture id and TL0PICIDX from the last values sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from router.forwarding.rtcp import retransmissions
from router.forwarding.state import Downstream, Layer, Participant, Stream, Track
from router.forwarding.subscriber_links import SubscriberLink, stamp_transport_seq
from router.forwarding.vp8 import Vp8Info, rewrite_vp8

__all__ = [
    "LayerChooser",
    "LayerState",
    "complete_switches",
    "continue_vp8",
    "probe_packets",
    "rebase_vp8",
]

TICK: Final = 0.2
PROBE_TICK: Final = 0.02
PROBE_DURATION: Final = 0.5
UP_HOLD: Final = 1.0
DOWN_SETTLE: Final = 1.0
"""For this long after a switch up, one step back down waits: the new layer's keyframe is a
burst the delay detector can read as congestion, and acting on it at once makes the layer
flap (up, down 0.2 s later, up again). A deeper fall is acted on at once."""
ACTIVE_WINDOW: Final = 1.5
"""A layer that sent nothing for this long is not offered (the publisher may have paused it)."""
_PID_MASK: Final = 0x7FFF


class LayerState:
    """Per simulcast subscription: the switch in progress and the VP8 continuation."""

    __slots__ = (
        "last_pid",
        "last_tl0",
        "max_height",
        "pid_offset",
        "switches",
        "target",
        "tl0_offset",
        "up_at",
        "up_since",
    )

    def __init__(self) -> None:
        self.target: Layer | None = None
        """Layer being switched to, waiting for its keyframe."""
        self.max_height = 0
        """The height the subscriber asked for (0: no limit)."""
        self.up_since: float | None = None
        self.up_at = -1e9
        """When the last switch up was asked for (its keyframe is a burst; see DOWN_SETTLE)."""
        self.switches = 0
        self.pid_offset = 0
        self.tl0_offset = 0
        self.last_pid = -1
        self.last_tl0 = -1


def rebase_vp8(sim: LayerState, info: Vp8Info | None) -> None:
    """A new source starts at this packet: continue picture id and TL0PICIDX from the last
    values this subscription sent (they jump by one, as after a normal frame)."""
    if info is None:
        return
    if info.pid >= 0 and sim.last_pid >= 0:
        sim.pid_offset = (sim.last_pid + 1 - info.pid) & _PID_MASK
    if info.tl0 >= 0 and sim.last_tl0 >= 0:
        sim.tl0_offset = (sim.last_tl0 + 1 - info.tl0) & 0xFF


def continue_vp8(sim: LayerState, data: bytes, payload_start: int, info: Vp8Info) -> bytes:
    """The outgoing copy with this subscription's picture id / TL0PICIDX."""
    pid = (info.pid + sim.pid_offset) & _PID_MASK if info.pid >= 0 else 0
    tl0 = (info.tl0 + sim.tl0_offset) & 0xFF if info.tl0 >= 0 else 0
    if info.pid >= 0 and (sim.last_pid < 0 or 0 < (pid - sim.last_pid) & _PID_MASK < 0x4000):
        sim.last_pid = pid
    if info.tl0 >= 0 and (sim.last_tl0 < 0 or 0 < (tl0 - sim.last_tl0) & 0xFF < 0x80):
        sim.last_tl0 = tl0
    if not sim.pid_offset and not sim.tl0_offset:
        return data
    if not info.pid_long:
        pid &= 0x7F
    return rewrite_vp8(data, payload_start, info, pid, tl0)


def complete_switches(stream: Stream) -> None:
    """A keyframe starts on ``stream``: subscriptions waiting for it move over now."""
    waiting = stream.waiting
    stream.waiting = []
    for d in waiting:
        sim = d.sim
        if sim is None or sim.target is not stream.layer or d.track is not stream.track:
            continue
        old = d.stream
        if old is not None and old is not stream:
            old.fanout.remove(d)
        if old is not stream:
            stream.fanout.append(d)
        d.stream = stream
        d.layer = stream.layer.index
        sim.target = None
        sim.switches += 1


class LayerChooser:
    """Runs the choice for every subscriber with simulcast subscriptions (see the module)."""

    def __init__(self, request_keyframe: Callable[[Stream, float], None]) -> None:
        self._request_keyframe = request_keyframe
        self._next: float | None = None
        self.switch_requests = 0
        self.probes = 0

    def deadline(self, links: Iterable[SubscriberLink], has_simulcast: bool) -> float | None:
        """The next tick: every 20 ms while a probe runs, every 200 ms with simulcast."""
        due = (self._next if self._next is not None else 0.0) if has_simulcast else None
        for link in links:
            if link.probe_until is not None:
                tick = link.probe_next
                if due is None or tick < due:
                    due = tick
        return due

    def tick(self, tracks: Iterable[Track], parts: Iterable[Participant], now: float) -> bool:
        """Measure layer rates and re-choose; returns False if it was not yet due."""
        if self._next is not None and now < self._next:
            return False
        self._next = now + TICK
        for track in tracks:
            for layer in track.layers:
                stream = layer.stream
                if stream is not None:
                    stream.measure(now)
        for part in parts:
            link = part.link
            if isinstance(link, SubscriberLink):
                self._choose(part, link, now)
        return True

    def _choose(self, part: Participant, link: SubscriberLink, now: float) -> None:
        link.finish_probe(now)
        sims: list[Downstream] = []
        other = 0.0
        for d in part.downstreams.values():
            if d.stream is None:
                continue
            if d.sim is not None and d.track is not None and d.pinned_layer is None:
                sims.append(d)
            else:
                other += d.stream.rate
        if not sims:
            return
        share = max(0.0, link.estimator.estimate - other) / len(sims)
        for d in sims:
            self._choose_one(d, link, share, now)

    def _choose_one(self, d: Downstream, link: SubscriberLink, share: float, now: float) -> None:
        sim = d.sim
        track = d.track
        assert sim is not None and track is not None
        layers = ranked_layers(track, now)
        if not layers:
            return
        allowed = layers
        if sim.max_height:
            cap = next((i for i, x in enumerate(layers) if _height(x) >= sim.max_height), None)
            allowed = layers if cap is None else layers[: cap + 1]
        ideal = allowed[-1]
        desired = allowed[0]
        for layer in allowed:
            if _rate(layer) <= share:
                desired = layer
        current_layer = sim.target or (track.layers[d.layer] if d.layer is not None else None)
        current = layers.index(current_layer) if current_layer in layers else -1
        want = layers.index(desired)
        if current >= 0 and want == current - 1 and now - sim.up_at < DOWN_SETTLE:
            return
        if want < current or current < 0:
            sim.up_since = None
            self._switch(d, desired, now)
        elif want > current:
            if sim.up_since is None:
                sim.up_since = now
            elif now - sim.up_since >= UP_HOLD:
                sim.up_since = None
                sim.up_at = now
                self._switch(d, layers[current + 1], now)
        else:
            sim.up_since = None
            if layers.index(ideal) > current and link.probe_until is None:
                missing = _rate(layers[current + 1]) - _rate(layers[current])
                if link.may_probe(now) and missing > 0:
                    self.probes += 1
                    link.start_probe(d, 1.25 * missing, now, PROBE_DURATION)

    def switch(self, d: Downstream, layer: Layer, now: float) -> None:
        """Move ``d`` to ``layer`` at that layer's next keyframe (asked for now)."""
        self._switch(d, layer, now)

    def _switch(self, d: Downstream, layer: Layer, now: float) -> None:
        sim = d.sim
        stream = layer.stream
        assert sim is not None
        if stream is None or (stream is d.stream and sim.target is None):
            return
        if stream is d.stream:
            sim.target = None  # back to where it is: cancel the pending switch
            return
        if sim.target is layer and d in stream.waiting:
            return
        sim.target = layer
        stream.waiting.append(d)
        self.switch_requests += 1
        self._request_keyframe(stream, now)


def probe_packets(link: SubscriberLink, now: float) -> list[bytes]:
    """The probe copies due now: recent packets of the probed subscription sent again
    (as RTX when negotiated; a receiver drops what it already has)."""
    d = link.probe_target
    budget = link.probe_budget(now, PROBE_TICK)
    if d is None or budget <= 0 or d.stream is None:
        return []
    last = d.last_out_ext
    out: list[bytes] = []
    spent = 0
    for back in range(0, 256, 16):
        seqs = [(last - back - i) & 0xFFFF for i in range(16)]
        # Numbered only once chosen: a number never sent would read as a loss.
        packets, _ = retransmissions(d, seqs, 16, now, stamp=False)
        for packet in packets:
            out.append(stamp_transport_seq(d, packet, now))
            spent += len(packet)
            if spent >= budget:
                return out
        if not packets:
            break
    return out


def ranked_layers(track: Track, now: float) -> list[Layer]:
    """Receiving layers, lowest first: by keyframe height once every layer has shown one,
    by measured rate until then."""
    horizon = now - ACTIVE_WINDOW
    live = [x for x in track.layers if x.stream is not None and x.stream.last_packet >= horizon]
    if all(_height(x) for x in live):
        return sorted(live, key=lambda x: (_height(x), _rate(x)))
    return sorted(live, key=_rate)


def _height(layer: Layer) -> int:
    return layer.stream.height if layer.stream is not None else 0


def _rate(layer: Layer) -> float:
    return layer.stream.rate if layer.stream is not None else 0.0
