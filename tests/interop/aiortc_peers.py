"""aiortc peers for the interop test: synthetic tracks, a publisher and a subscriber.

aiortc is asyncio; the router is Trio in its own process, so this module is pure asyncio and the
test runs it with ``asyncio.run``. Tracks generate frames in memory (no files, no devices):
video is a moving gradient, so VP8 has real work to do and keyframes differ from deltas; audio
is a 440 Hz tone in 20 ms Opus frames.
"""

from __future__ import annotations

import array
import asyncio
import fractions
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aioice.ice
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from av import AudioFrame, VideoFrame

from benchmarks.sfu.wsclient import AsyncSignaling


@contextmanager
def loopback_only() -> Iterator[None]:
    """Make aioice gather only 127.0.0.1: it skips loopback by default, and this test must use
    loopback networking only (the router listens on 127.0.0.1)."""
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original


class GradientVideoTrack(VideoStreamTrack):
    """160x120 yuv420p frames at 30 fps whose luma gradient moves every frame."""

    WIDTH, HEIGHT = 160, 120

    def __init__(self) -> None:
        super().__init__()
        self._index = 0
        self._chroma = bytes([128]) * (self.WIDTH * self.HEIGHT // 4)

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        self._index += 1
        row = bytes((x + self._index * 4) % 256 for x in range(self.WIDTH))
        frame = VideoFrame(self.WIDTH, self.HEIGHT, "yuv420p")
        frame.planes[0].update(row * self.HEIGHT)
        frame.planes[1].update(self._chroma)
        frame.planes[2].update(self._chroma)
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneAudioTrack(AudioStreamTrack):
    """A 440 Hz tone, mono s16 at 48 kHz, 20 ms (960 samples) per frame, paced to real time.

    (The base class makes 8 kHz silence; 20 ms at 48 kHz is one Opus packet per frame.)
    """

    RATE, SAMPLES = 48000, 960

    def __init__(self) -> None:
        super().__init__()
        self._sample = 0
        self._started: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._started is None:
            self._started = time.monotonic()
        else:
            await asyncio.sleep(self._started + self._sample / self.RATE - time.monotonic())
        tone = array.array("h", (int(8000 * math.sin(2 * math.pi * 440 * (i + self._sample)
                                                     / self.RATE)) for i in range(self.SAMPLES)))
        frame = AudioFrame(format="s16", layout="mono", samples=self.SAMPLES)
        frame.planes[0].update(tone.tobytes())
        frame.sample_rate = self.RATE
        frame.pts, frame.time_base = self._sample, fractions.Fraction(1, self.RATE)
        self._sample += self.SAMPLES
        return frame


@dataclass
class Received:
    """What the subscriber's tracks delivered, per kind."""

    frames: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    sizes: set[tuple[int, int]] = field(default_factory=set)


class Publisher:
    """Publishes synthetic tracks; :meth:`publish` can be called again to add a track (the
    router answers each new offer on the same ICE/DTLS transport)."""

    def __init__(self, ws: AsyncSignaling) -> None:
        self.ws = ws
        self.pc = RTCPeerConnection()
        self.answers: list[dict[str, Any]] = []

    @classmethod
    async def join(cls, url: str, token: str) -> Publisher:
        ws = await AsyncSignaling.connect(url)
        await ws.send({"type": "join", "token": token})
        await ws.recv_type("joined")
        return cls(ws)

    async def publish(self, *kinds: str) -> dict[str, Any]:
        """Add a sendonly transceiver per kind, offer, apply the router's answer."""
        for kind in kinds:
            track = ToneAudioTrack() if kind == "audio" else GradientVideoTrack()
            self.pc.addTransceiver(track, direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.ws.send({"type": "publish", "sdp": self.pc.localDescription.sdp})
        answer = await self.ws.recv_type("answer")
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        self.answers.append(answer)
        return answer

    async def close(self) -> None:
        await self.pc.close()
        await self.ws.close()


async def _consume(track: MediaStreamTrack, received: Received) -> None:
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:  # the track ended
            return
        received.frames[track.kind] += 1
        if isinstance(frame, VideoFrame):
            received.sizes.add((frame.width, frame.height))


class Subscriber:
    """Answers every router offer (renegotiation) and counts decoded frames."""

    def __init__(self, ws: AsyncSignaling) -> None:
        self.ws = ws
        self.pc = RTCPeerConnection()
        self.received = Received()
        self.offers: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            task = asyncio.ensure_future(_consume(track, self.received))
            self._tasks.add(task)

    @classmethod
    async def join(cls, url: str, token: str) -> Subscriber:
        ws = await AsyncSignaling.connect(url)
        await ws.send({"type": "join", "token": token})
        await ws.recv_type("joined")
        return cls(ws)

    async def answer_next_offer(self, timeout: float = 10.0) -> dict[str, Any]:
        offer = await self.ws.recv_type("offer", timeout)
        self.offers.append(offer)
        await self.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.ws.send({"type": "answer", "sdp": self.pc.localDescription.sdp})
        return offer

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
        await self.ws.close()
