"""Sans-IO media sources shaped like Chromium's: VP8 video (optionally simulcast) and Opus audio.

Each source is told the time (``now``, seconds on any monotonic clock) and answers with the
packets due by then; nothing here reads a clock, sleeps or touches a socket, so a load generator
drives thousands of them from one loop and tests drive them with invented times.

* Video: 30 frames per second; a delta frame is ``bitrate / 8 / fps`` bytes (±25 %), a keyframe
  ``keyframe_factor`` times that, every ``keyframe_interval`` seconds and on request (PLI).
  Frames are split into packets of at most ``max_payload`` bytes, each with a VP8 payload
  descriptor (picture id, TL0PICIDX, temporal id when temporal layers are on) and the VP8 frame
  header on the first packet; the last packet of a frame carries the marker bit. Packets leave
  at the pacing rate (libwebrtc paces at 2.5x the target bitrate), so a keyframe is a burst
  that lasts a few tens of milliseconds rather than one instant.
* Audio: one Opus packet per 20 ms (50 per second), 60 to 120 bytes, with an audio level.

Every packet of one publisher's transport carries the next transport-wide sequence number
(:class:`TransportSequence` is shared by its streams), as with BUNDLE in Chromium.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from benchmarks.media.extensions import CHROMIUM_AUDIO, CHROMIUM_VIDEO, ExtensionIds, HeaderTemplate
from benchmarks.media.stamp import TAIL_SIZE
from benchmarks.media.vp8 import Vp8Descriptor, frame_header

VP8_PAYLOAD_TYPE = 96
#: Periodic keyframes of :meth:`Publisher.meeting` (the issue's load: a burst every 2 s).
_MEETING_KEYFRAME_INTERVAL = 2.0
OPUS_PAYLOAD_TYPE = 111
VIDEO_CLOCK = 90_000
AUDIO_CLOCK = 48_000
#: Opus TOC byte for 20 ms hybrid full-band mono frames, what Chromium sends for speech.
OPUS_TOC = 0x78
#: Temporal layer of each frame in the 3-layer pattern libwebrtc uses for VP8.
TEMPORAL_PATTERN = (0, 2, 1, 2)


@dataclass(slots=True)
class MediaPacket:
    """One unprotected RTP packet and what a receiver needs to account for it."""

    data: bytearray
    stream: int
    number: int
    due: float
    kind: str
    keyframe: bool = False
    #: Temporal layer (VP8 TID); 0 for audio.
    layer: int = 0
    #: Last packet of a video frame (the RTP marker bit).
    marker: bool = False


@dataclass(slots=True)
class TransportSequence:
    """The transport-wide sequence counter one BUNDLE transport shares across its streams."""

    value: int = 0

    def take(self) -> int:
        current = self.value
        self.value = (current + 1) & 0xFFFF
        return current


@dataclass(slots=True)
class StreamCounters:
    """What an RTCP sender report needs: packets, payload octets, last RTP timestamp."""

    packets: int = 0
    octets: int = 0
    rtp_timestamp: int = 0
    last_sent: float = 0.0


class VideoStream:
    """One VP8 encoding (one simulcast layer, or the only one)."""

    kind = "video"
    clock_rate = VIDEO_CLOCK

    def __init__(self, *, stream: int, ssrc: int, start: float, bitrate_bps: float,
                 transport: TransportSequence | None, rng: random.Random, mid: str = "1",
                 rid: str | None = None, ids: ExtensionIds = CHROMIUM_VIDEO, fps: float = 30.0,
                 keyframe_interval: float = 2.0, keyframe_factor: float = 6.0,
                 max_payload: int = 1100, temporal_layers: int = 1, pacing_factor: float = 2.5,
                 width: int = 1280, height: int = 720,
                 keyframe_phase: float | None = None) -> None:
        """``keyframe_phase``: seconds from the first keyframe (at ``start``) to the second;
        the periodic ones follow every ``keyframe_interval`` (default: the interval itself)."""
        if bitrate_bps <= 0 or fps <= 0 or keyframe_interval <= 0:
            raise ValueError("bitrate, fps and keyframe interval must be positive")
        if keyframe_phase is not None and not 0 < keyframe_phase <= keyframe_interval:
            raise ValueError(f"keyframe_phase {keyframe_phase} out of (0, {keyframe_interval}]")
        if not 64 <= max_payload <= 1200:
            raise ValueError(f"max_payload {max_payload} out of range 64..1200")
        if temporal_layers not in (1, 2, 3):
            raise ValueError(f"temporal_layers {temporal_layers} must be 1, 2 or 3")
        self.stream, self.ssrc = stream, ssrc
        self.template = HeaderTemplate(ssrc=ssrc, payload_type=VP8_PAYLOAD_TYPE, ids=ids,
                                       mid=mid, rid=rid)
        self.transport, self.rng = transport, rng
        self.bitrate, self.fps = bitrate_bps, fps
        self.keyframe_interval, self.keyframe_factor = keyframe_interval, keyframe_factor
        self.max_payload, self.temporal_layers = max_payload, temporal_layers
        self.pacing_bps = bitrate_bps * pacing_factor
        self.width, self.height = width, height
        self.counters = StreamCounters()
        self._next_frame_at = start
        self._frame = 0
        self._next_keyframe_at = start
        self._first_keyframe_gap = keyframe_interval if keyframe_phase is None else keyframe_phase
        self._keyframes = 0
        self._keyframe_requested = False
        self._seq = rng.randrange(0x10000)
        self._ts0 = rng.randrange(1 << 32)
        self._picture_id = rng.randrange(0x8000)
        self._tl0 = rng.randrange(0x100)
        self._queue: list[MediaPacket] = []
        self._number = 0
        self._pacer_free_at = start

    def request_keyframe(self) -> None:
        """A PLI or FIR arrived: the next frame is a keyframe."""
        self._keyframe_requested = True

    @property
    def next_number(self) -> int:
        """The stamp number the next packet of this stream gets."""
        return self._number

    def resume(self, now: float, bitrate_bps: float | None = None) -> None:
        """Continue after a pause (the camera was off): nothing is owed for the time in
        between, the next frame is encoded at ``now``, optionally at a new bitrate."""
        if bitrate_bps is not None:
            if bitrate_bps <= 0:
                raise ValueError("bitrate must be positive")
            self.pacing_bps *= bitrate_bps / self.bitrate
            self.bitrate = bitrate_bps
        self._queue.clear()
        self._next_frame_at = self._pacer_free_at = now

    def next_due(self) -> float:
        """When :meth:`poll` next has something to give."""
        return self._queue[0].due if self._queue else self._next_frame_at

    def poll(self, now: float) -> list[MediaPacket]:
        """Packets whose send time has come."""
        while self._next_frame_at <= now:
            self._encode_frame(self._next_frame_at)
            self._frame += 1
            self._next_frame_at += 1.0 / self.fps
        due = 0
        for packet in self._queue:
            if packet.due > now:
                break
            due += 1
        out, self._queue = self._queue[:due], self._queue[due:]
        counters = self.counters
        for packet in out:
            packet.number = self._number
            self._number += 1
            counters.packets += 1
            counters.octets += len(packet.data)
            packet.data = self.template.render(
                packet.data, seq=self._seq, timestamp=self.counters.rtp_timestamp,
                marker=packet.marker, now=packet.due,
                transport_seq=self.transport.take() if self.transport else 0)
            self._seq = (self._seq + 1) & 0xFFFF
        return out

    def _encode_frame(self, at: float) -> None:
        keyframe = self._keyframe_requested or at >= self._next_keyframe_at
        if keyframe:
            self._keyframe_requested = False
            gap = self._first_keyframe_gap if not self._keyframes else self.keyframe_interval
            self._next_keyframe_at = at + gap
            self._keyframes += 1
        size = self.bitrate / 8 / self.fps * self.rng.uniform(0.75, 1.25)
        if keyframe:
            size *= self.keyframe_factor
        tid = 0 if keyframe or self.temporal_layers == 1 else \
            TEMPORAL_PATTERN[self._frame % 4] % self.temporal_layers
        if tid == 0:
            self._tl0 = (self._tl0 + 1) & 0xFF
        self._picture_id = (self._picture_id + 1) & 0x7FFF
        timestamp = (self._ts0 + round((at - 0) * VIDEO_CLOCK)) & 0xFFFFFFFF
        self.counters.rtp_timestamp = timestamp
        count = max(1, math.ceil(size / self.max_payload))
        each = max(32, int(size / count))
        header = frame_header(keyframe, each, self.width, self.height)
        send_at = max(at, self._pacer_free_at)
        for i in range(count):
            descriptor = Vp8Descriptor(
                start_of_partition=i == 0, picture_id=self._picture_id, tl0_pic_idx=self._tl0,
                temporal_id=tid if self.temporal_layers > 1 else None,
                layer_sync=tid > 0 and self._frame % 4 in (1, 2)).encode()
            body = bytearray(descriptor)
            if i == 0:
                body += header
            body += bytes(max(TAIL_SIZE, each - len(body)))
            # The payload for now: poll() puts the header in front when the packet is due.
            self._queue.append(MediaPacket(body, self.stream, -1, send_at, "video",
                                           keyframe, tid, marker=i == count - 1))
            send_at += (len(body) + 40) * 8 / self.pacing_bps
        self._pacer_free_at = send_at
        self.counters.last_sent = at


class AudioStream:
    """Opus at 50 packets per second with talk spurts (audio level with the voice flag)."""

    kind = "audio"
    clock_rate = AUDIO_CLOCK

    def __init__(self, *, stream: int, ssrc: int, start: float,
                 transport: TransportSequence | None, rng: random.Random, mid: str = "0",
                 ids: ExtensionIds = CHROMIUM_AUDIO, ptime: float = 0.02,
                 min_size: int = 60, max_size: int = 120) -> None:
        if not TAIL_SIZE + 1 <= min_size <= max_size <= 1200:
            raise ValueError(f"audio sizes {min_size}..{max_size} out of range "
                             f"{TAIL_SIZE + 1}..1200")
        self.stream, self.ssrc = stream, ssrc
        self.template = HeaderTemplate(ssrc=ssrc, payload_type=OPUS_PAYLOAD_TYPE, ids=ids,
                                       mid=mid)
        self.transport, self.rng = transport, rng
        self.ptime, self.min_size, self.max_size = ptime, min_size, max_size
        self.counters = StreamCounters()
        self._next_at = start
        self._seq = rng.randrange(0x10000)
        self._ts = rng.randrange(1 << 32)
        self._number = 0
        self._talking_until = start

    def request_keyframe(self) -> None:
        """Audio has no keyframes."""

    @property
    def next_number(self) -> int:
        return self._number

    def resume(self, now: float, bitrate_bps: float | None = None) -> None:
        """Continue after a pause (muted): nothing is owed for the time in between."""
        self._next_at = now

    def next_due(self) -> float:
        return self._next_at

    def poll(self, now: float) -> list[MediaPacket]:
        out = []
        while self._next_at <= now:
            at = self._next_at
            if at >= self._talking_until + 1.0:
                self._talking_until = at + self.rng.uniform(0.5, 4.0)
            voice = at < self._talking_until
            size = self.rng.randint(self.min_size, self.max_size)
            payload = bytearray(size)
            payload[0] = OPUS_TOC
            data = self.template.render(
                payload, seq=self._seq, timestamp=self._ts, marker=False, now=at,
                transport_seq=self.transport.take() if self.transport else 0,
                audio_level=self.rng.randint(20, 40) if voice else 127, voice=voice)
            out.append(MediaPacket(data, self.stream, self._number, at, "audio"))
            self.counters.packets += 1
            self.counters.octets += size
            self.counters.rtp_timestamp = self._ts
            self.counters.last_sent = at
            self._number += 1
            self._seq = (self._seq + 1) & 0xFFFF
            self._ts = (self._ts + round(self.ptime * AUDIO_CLOCK)) & 0xFFFFFFFF
            self._next_at += self.ptime
        return out


Stream = VideoStream | AudioStream


@dataclass(frozen=True, slots=True)
class SimulcastLayer:
    """One simulcast encoding: its rid and its share of the publisher's video bitrate."""

    rid: str
    bitrate_bps: float
    width: int
    height: int


#: Chromium's three VP8 layers for a 720p camera at about 1.7 Mbit/s in total.
CHROMIUM_SIMULCAST = (SimulcastLayer("q", 150_000, 320, 180),
                      SimulcastLayer("h", 500_000, 640, 360),
                      SimulcastLayer("f", 1_050_000, 1280, 720))


@dataclass(slots=True)
class Publisher:
    """A participant's camera and microphone on one BUNDLE transport."""

    streams: list[Stream] = field(default_factory=list)
    transport: TransportSequence = field(default_factory=TransportSequence)
    _templates: dict[int, HeaderTemplate] = field(default_factory=dict)

    def add(self, stream: Stream) -> None:
        """Take a stream whose ``transport`` is None: this publisher numbers its packets."""
        self.streams.append(stream)
        self._templates[stream.stream] = stream.template

    @classmethod
    def meeting(cls, *, first_stream: int, ssrcs: list[int], start: float, rng: random.Random,
                video_bps: float = 1_000_000, audio: bool = True,
                simulcast: tuple[SimulcastLayer, ...] = (), temporal_layers: int = 1,
                max_payload: int = 1100, audio_ids: ExtensionIds = CHROMIUM_AUDIO,
                video_ids: ExtensionIds = CHROMIUM_VIDEO) -> Publisher:
        """Audio (if ``audio``) then video: one VP8 stream, or one per simulcast layer.

        ``ssrcs`` gives one SSRC per stream in that order; stream ids count up from
        ``first_stream``; frames of the participants start at staggered instants (not all
        keyframes at once) because ``start`` is offset by up to one frame interval, and each
        publisher's periodic keyframes run on a phase of their own (uniform over the 2 s
        interval): independent cameras do not keyframe in step, and ten publishers that did
        would turn every second second into one burst of ten keyframes. The ids are the ones
        negotiated with the other side (Chromium sends only those)."""
        out = cls()
        layers = simulcast or (SimulcastLayer("", video_bps, 1280, 720),)
        need = len(layers) + (1 if audio else 0)
        if len(ssrcs) != need:
            raise ValueError(f"{need} SSRCs needed, {len(ssrcs)} given")
        stream = first_stream
        it = iter(ssrcs)
        if audio:
            out.add(AudioStream(stream=stream, ssrc=next(it), start=start + rng.uniform(0, 0.02),
                                transport=None, rng=rng, ids=audio_ids))
            stream += 1
        offset = rng.uniform(0, 1 / 30)
        phase = max(1 / 30, rng.uniform(0, _MEETING_KEYFRAME_INTERVAL))
        for layer in layers:
            out.add(VideoStream(
                stream=stream, ssrc=next(it), start=start + offset, bitrate_bps=layer.bitrate_bps,
                transport=None, rng=rng, rid=layer.rid or None, ids=video_ids,
                temporal_layers=temporal_layers, max_payload=max_payload,
                width=layer.width, height=layer.height,
                keyframe_interval=_MEETING_KEYFRAME_INTERVAL, keyframe_phase=phase))
            stream += 1
        return out

    def next_due(self) -> float:
        return min(s.next_due() for s in self.streams)

    def poll(self, now: float) -> list[MediaPacket]:
        """Every stream's due packets, in send-time order."""
        out: list[MediaPacket] = []
        for s in self.streams:
            out += s.poll(now)
        if len(self.streams) > 1:
            out.sort(key=lambda p: p.due)
        # Transport-wide numbers follow the order packets leave the transport, across streams.
        take = self.transport.take
        for packet in out:
            self._templates[packet.stream].set_transport_seq(packet.data, take())
        return out

    def resume(self, now: float, video_bps: float | None = None) -> None:
        """Continue every stream after a pause; ``video_bps`` is split over the video
        streams in proportion to their current bitrates."""
        videos = [s for s in self.streams if isinstance(s, VideoStream)]
        total = sum(v.bitrate for v in videos)
        for s in self.streams:
            share = video_bps * s.bitrate / total if video_bps and isinstance(s, VideoStream) \
                else None
            s.resume(now, share)

    def request_keyframe(self, ssrc: int | None = None) -> None:
        """PLI/FIR for one SSRC, or every video stream when ``ssrc`` is None."""
        for s in self.streams:
            if ssrc is None or s.ssrc == ssrc:
                s.request_keyframe()


__all__ = ["AUDIO_CLOCK", "CHROMIUM_SIMULCAST", "OPUS_PAYLOAD_TYPE", "VIDEO_CLOCK",
           "VP8_PAYLOAD_TYPE", "AudioStream", "MediaPacket", "Publisher", "SimulcastLayer",
           "Stream", "StreamCounters", "TransportSequence", "VideoStream"]
