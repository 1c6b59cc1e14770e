"""Subscriptions in the forwarder: start, stop, retarget and pin them, attach them to tracks.

Split from :mod:`router.forwarding.forwarder` to keep modules small; a mixin like
:class:`~router.forwarding.rtcp_input.RtcpInput` because every method reads and updates the
forwarder's own tables, which :class:`~router.forwarding.forwarder.Forwarder` owns and declares
here for the type checker.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TYPE_CHECKING

from router.forwarding.config import ForwarderConfig
from router.forwarding.layers import LayerChooser, LayerState
from router.forwarding.packet import extension_table
from router.forwarding.specs import (
    ABS_SEND_TIME,
    STRIPPED_EXTENSIONS,
    TRANSPORT_WIDE_CC,
    ForwardingUsageError,
    SubscriptionSpec,
)
from router.forwarding.state import Downstream, Layer, Participant, Stream, Track
from router.forwarding.subscriber_links import SubscriberLink
from router.rtp import Bye

__all__ = ["Subscriptions"]


class Subscriptions:
    """The forwarder's subscription calls (mixed into :class:`Forwarder`)."""

    config: ForwarderConfig
    chooser: LayerChooser
    _rng: random.Random
    _tracks: dict[str, Track]
    _subscriptions: dict[str, list[Downstream]]
    _rtcp_out: list[tuple[str, bytes]]
    _simulcast_subscriptions: int

    if TYPE_CHECKING:

        def _participant(self, participant_id: str) -> Participant: ...

        def subscriber_link(self, part: Participant) -> SubscriberLink | None: ...

        def _request_keyframe(self, stream: Stream, now: float) -> None: ...

    def subscribe(self, spec: SubscriptionSpec, now: float) -> None:
        """Start forwarding a track to a subscriber (now, or when the track is published)."""
        sub = self._participant(spec.subscriber)
        if spec.track_id in sub.downstreams:
            raise ForwardingUsageError(f"{spec.subscriber!r} already subscribes {spec.track_id!r}")
        out_ssrcs = [s for s in (spec.ssrc, spec.rtx_ssrc) if s is not None]
        if len(set(out_ssrcs)) != len(out_ssrcs) or any(s in sub.by_out_ssrc for s in out_ssrcs):
            raise ForwardingUsageError(f"outgoing SSRC already in use for {spec.subscriber!r}")
        rng = self._rng
        d = Downstream(
            spec, sub, rng.randrange(1 << 15), rng.randrange(1 << 32), rng.randrange(1 << 15)
        )
        sub.downstreams[spec.track_id] = d
        link = self.subscriber_link(sub)
        tw_id = spec.extensions.get(TRANSPORT_WIDE_CC, 0)
        if link is not None and 1 <= tw_id <= 255:
            d.tw = link
            d.tw_id = tw_id
            d.tw_hdr = ((tw_id << 4) | 1) & 0xFF
            link.twcc = True
        for ssrc in out_ssrcs:
            sub.by_out_ssrc[ssrc] = d
        self._subscriptions.setdefault(spec.track_id, []).append(d)
        track = self._tracks.get(spec.track_id)
        if track is not None:
            self._attach(d, track, now)

    def unsubscribe(
        self, subscriber: str, track_id: str, now: float, *, send_bye: bool = True
    ) -> None:
        """Stop a subscription and forget its state; optionally tell the receiver (BYE)."""
        sub = self._participant(subscriber)
        d = sub.downstreams.pop(track_id, None)
        if d is None:
            raise ForwardingUsageError(f"{subscriber!r} does not subscribe {track_id!r}")
        spec = d.spec
        out_ssrcs = tuple(s for s in (spec.ssrc, spec.rtx_ssrc) if s is not None)
        for ssrc in out_ssrcs:
            del sub.by_out_ssrc[ssrc]
        self._unlist(track_id, d)
        self._detach(d)
        if send_bye:
            self._rtcp_out.append((subscriber, Bye(out_ssrcs).build()))

    def retarget(self, subscriber: str, track_id: str, new_track_id: str, now: float) -> None:
        """Feed an existing subscription from another track, without a visible discontinuity.

        For a republish under a new track id or a "switch the slot to another speaker"; the
        outgoing SSRC, sequence numbers and timestamps continue.
        """
        sub = self._participant(subscriber)
        if new_track_id in sub.downstreams:
            raise ForwardingUsageError(f"{subscriber!r} already subscribes {new_track_id!r}")
        d = sub.downstreams.pop(track_id, None)
        if d is None:
            raise ForwardingUsageError(f"{subscriber!r} does not subscribe {track_id!r}")
        self._unlist(track_id, d)
        self._detach(d)
        d.spec = replace(d.spec, track_id=new_track_id)
        sub.downstreams[new_track_id] = d
        self._subscriptions.setdefault(new_track_id, []).append(d)
        track = self._tracks.get(new_track_id)
        if track is not None:
            self._attach(d, track, now)

    def select_layer(self, subscriber: str, track_id: str, layer: int | None, now: float) -> None:
        """Pin a subscription to a layer (None: best available) -- the layer-choice hook."""
        d = self._participant(subscriber).downstreams.get(track_id)
        if d is None:
            raise ForwardingUsageError(f"{subscriber!r} does not subscribe {track_id!r}")
        d.pinned_layer = layer
        track = d.track
        if track is None:
            return
        if d.sim is not None and d.stream is not None and layer is not None:
            if 0 <= layer < len(track.layers):
                self.chooser.switch(d, track.layers[layer], now)  # at its next keyframe
            return
        self._select_layer(d, now)

    def _unlist(self, track_id: str, d: Downstream) -> None:
        waiting = self._subscriptions[track_id]
        waiting.remove(d)
        if not waiting:
            del self._subscriptions[track_id]

    def _attach(self, d: Downstream, track: Track, now: float) -> None:
        d.track = track
        table = [-1] * 256
        for pt, key in track.codec_of_pt.items():
            sub_pt = d.spec.codecs.get(key)
            if sub_pt is not None:
                table[pt] = sub_pt
                table[pt | 0x80] = sub_pt | 0x80
        d.b1_table = table
        # The publisher's abs-send-time and transport-wide number are stripped too: they
        # describe its uplink; the router writes its own where the subscriber negotiated them
        # (the transport-wide number when both were, as browsers then estimate with it).
        stripped = STRIPPED_EXTENSIONS | {ABS_SEND_TIME, TRANSPORT_WIDE_CC}
        ast_id = 0 if d.tw is not None else d.ast_id
        d.ext_table = extension_table(track.extensions, dict(d.spec.extensions), stripped)
        d.tail_key = None if d.ext_table is None and not ast_id else (d.ext_table, ast_id)
        d.tw_key = (d.ext_table, d.tw_id)
        if len(track.layers) > 1 and track.is_video and self.config.link.enabled:
            if d.sim is None:
                d.sim = LayerState()  # kept across detach: picture ids continue
            self._simulcast_subscriptions += 1
        self._select_layer(d, now)

    def _detach(self, d: Downstream) -> None:
        sim = d.sim
        if sim is not None and d.track is not None:
            self._simulcast_subscriptions -= 1
            if sim.target is not None and sim.target.stream is not None:
                waiting = sim.target.stream.waiting
                if d in waiting:
                    waiting.remove(d)
            sim.target = None
        if d.stream is not None:
            d.stream.fanout.remove(d)
        d.stream = None
        d.track = None
        d.layer = None
        d.b1_table = []
        d.ext_table = None
        d.tail_key = None

    def _select_layer(self, d: Downstream, now: float) -> None:
        """Pick the pinned layer if it is receiving, else the best receiving one."""
        track = d.track
        if track is None:
            return
        layers = track.layers
        current = d.stream
        if d.sim is not None and current is not None and current.layer.stream is current:
            return  # simulcast: the layer choice moves it, at a keyframe
        target: Layer | None = None
        pinned = d.pinned_layer
        if pinned is not None and 0 <= pinned < len(layers) and layers[pinned].stream:
            target = layers[pinned]
        else:
            target = next((layer for layer in layers if layer.stream is not None), None)
        new = target.stream if target is not None else None
        if new is d.stream:
            return
        if d.stream is not None:
            d.stream.fanout.remove(d)
        d.stream = new
        d.layer = target.index if target is not None else None
        if new is not None:
            new.fanout.append(d)
            self._request_keyframe(new, now)
