"""A minimal forwarder behind :class:`~router.session.media.MediaPlane`, used until (or
instead of) :mod:`router.forwarding`.

It does the least an SFU must: route each publisher packet by SSRC (signalled, else learnt from
the payload type of a single matching track), rewrite SSRC, sequence number and payload type per
subscriber, strip header extensions (they carry the publisher's ids, which would mislead the
subscriber's demuxer), and pass keyframe requests upstream with a throttle. RTX, sender-report
translation and receiver reports are the full forwarder's job.
"""

from __future__ import annotations

import random as _random
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from router.rtp import Fir, Pli, RtcpDecodeError, parse_rtcp_compound
from router.sdp import OutgoingTrack
from router.session.media import MediaSink, PublishedTrack

_SSRC_SEQ_TS: Final = struct.Struct("!HIL")
KEYFRAME_INTERVAL: Final = 0.5
"""Seconds between two keyframe requests for one track (PLI storms hurt the publisher)."""


@dataclass(slots=True)
class _Out:
    sink: MediaSink
    ssrc: int
    payload_type: int
    seq_offset: int | None = None


@dataclass(slots=True)
class _Track:
    published: PublishedTrack
    publisher: MediaSink
    payload_types: frozenset[int]
    outs: dict[str, _Out] = field(default_factory=dict)
    source_ssrc: int | None = None
    last_keyframe_request: float = -1e9


class BasicForwarder:
    """Implements :class:`~router.session.media.MediaPlane` with the basic rewrite."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = _random.Random(seed)
        self._tracks: dict[str, _Track] = {}
        self._by_publisher: dict[str, dict[int, _Track]] = {}
        self._out_ssrcs: dict[str, dict[int, _Track]] = {}
        self.packets_out = 0
        self.bytes_out = 0

    def add_track(self, track: PublishedTrack, publisher: MediaSink, now: float) -> None:
        codec = track.media.codec
        state = _Track(track, publisher, frozenset({codec.payload_type}))
        self._tracks[track.track_id] = state
        table = self._by_publisher.setdefault(track.participant, {})
        for ssrc in track.media.ssrcs[:1]:
            table[ssrc] = state
            state.source_ssrc = ssrc

    def remove_track(self, track_id: str) -> None:
        state = self._tracks.pop(track_id, None)
        if state is None:
            return
        table = self._by_publisher.get(state.published.participant, {})
        for ssrc in [s for s, t in table.items() if t is state]:
            del table[ssrc]
        if not table:
            self._by_publisher.pop(state.published.participant, None)
        for subscriber in list(state.outs):
            self.unsubscribe(subscriber, track_id)

    def subscribe(
        self,
        subscriber: str,
        track: OutgoingTrack,
        sink: MediaSink,
        now: float,
        extensions: Mapping[str, int] | None = None,
    ) -> None:
        """(``extensions`` is ignored: this forwarder strips every header extension.)"""
        state = self._tracks.get(track.track_id)
        if state is None:
            return
        state.outs[subscriber] = _Out(sink, track.ssrc, track.codec.payload_type)
        self._out_ssrcs.setdefault(subscriber, {})[track.ssrc] = state
        if state.published.kind == "video":
            self._request_keyframe(state, now, force=True)

    def unsubscribe(self, subscriber: str, track_id: str) -> None:
        state = self._tracks.get(track_id)
        if state is None:
            return
        out = state.outs.pop(subscriber, None)
        if out is None:
            return
        table = self._out_ssrcs.get(subscriber, {})
        table.pop(out.ssrc, None)
        if not table:
            self._out_ssrcs.pop(subscriber, None)

    def remove_participant(self, participant: str) -> None:
        mine = [t for t, s in self._tracks.items() if s.published.participant == participant]
        for track_id in mine:
            self.remove_track(track_id)
        for state in list(self._tracks.values()):
            if participant in state.outs:
                self.unsubscribe(participant, state.published.track_id)
        self._by_publisher.pop(participant, None)
        self._out_ssrcs.pop(participant, None)

    # -- per packet ---------------------------------------------------------------------------

    def on_rtp(self, publisher: str, packet: bytes, now: float) -> int:
        if len(packet) < 12:
            return 0
        table = self._by_publisher.get(publisher)
        if table is None:
            return 0
        ssrc = int.from_bytes(packet[8:12], "big")
        state = table.get(ssrc)
        pt = packet[1] & 0x7F
        if state is None:
            state = self._learn(publisher, ssrc, pt)
            if state is None:
                return 0
        if pt not in state.payload_types or not state.outs:
            return 0  # RTX, FEC, padding probes of another type: not forwarded here
        plain = _strip_extensions(packet)
        if plain is None:
            return 0
        seq, ts = struct.unpack_from("!HI", plain, 2)
        sent = 0
        for out in state.outs.values():
            if out.seq_offset is None:
                out.seq_offset = (self._rng.randrange(0x8000) - seq) & 0xFFFF
            buf = bytearray(plain)
            buf[1] = (buf[1] & 0x80) | out.payload_type
            struct.pack_into("!HII", buf, 2, (seq + out.seq_offset) & 0xFFFF, ts, out.ssrc)
            if out.sink.send_rtp(bytes(buf)):
                sent += 1
                self.bytes_out += len(buf)
        self.packets_out += sent
        return sent

    def flush(self) -> int:
        """Nothing waits here: :meth:`on_rtp` sends each copy at once."""
        return 0

    def on_rtcp(self, participant: str, packet: bytes, now: float, from_publisher: bool) -> None:
        table = self._out_ssrcs.get(participant)
        if table is None or from_publisher:
            return  # publisher RTCP (SR, SDES): the full forwarder translates it
        try:
            packets = parse_rtcp_compound(packet)
        except RtcpDecodeError:
            return
        for item in packets:
            if isinstance(item, Pli):
                state = table.get(item.media_ssrc)
            elif isinstance(item, Fir):
                state = next((table[e.ssrc] for e in item.entries if e.ssrc in table), None)
            else:
                continue
            if state is not None:
                self._request_keyframe(state, now)

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        return None

    def state_counts(self) -> dict[str, int]:
        return {
            "tracks": len(self._tracks),
            "publishers": len(self._by_publisher),
            "subscribers": len(self._out_ssrcs),
            "subscriptions": sum(len(t.outs) for t in self._tracks.values()),
        }

    # -- internals ----------------------------------------------------------------------------

    def _learn(self, publisher: str, ssrc: int, pt: int) -> _Track | None:
        """Bind an unsignalled SSRC to the publisher's only unbound track with this type."""
        candidates = [
            t for t in self._tracks.values()
            if t.published.participant == publisher and t.source_ssrc is None
            and pt in t.payload_types
        ]  # fmt: skip
        if len(candidates) != 1:
            return None
        state = candidates[0]
        state.source_ssrc = ssrc
        self._by_publisher[publisher][ssrc] = state
        return state

    def _request_keyframe(self, state: _Track, now: float, force: bool = False) -> None:
        if state.source_ssrc is None:
            return
        if not force and now - state.last_keyframe_request < KEYFRAME_INTERVAL:
            return
        state.last_keyframe_request = now
        state.publisher.send_rtcp(Pli(1, state.source_ssrc).build())


def _strip_extensions(packet: bytes) -> bytes | None:
    """The packet without CSRC-preserving header extension block (X bit cleared)."""
    if not packet[0] & 0x10:
        return packet
    cc = packet[0] & 0x0F
    start = 12 + 4 * cc
    if len(packet) < start + 4:
        return None
    length = 4 + 4 * int.from_bytes(packet[start + 2 : start + 4], "big")
    if len(packet) < start + length:
        return None
    return bytes([packet[0] & 0xEF]) + packet[1:start] + packet[start + length :]


__all__ = ["KEYFRAME_INTERVAL", "BasicForwarder"]
