"""Builders shared by the forwarding tests: a room with publishers and subscribers, packets."""

from __future__ import annotations

import random

from router.forwarding import (
    Forwarder,
    ForwarderConfig,
    LayerSpec,
    SubscriptionSpec,
    TrackSpec,
)
from router.forwarding.specs import (
    ABS_SEND_TIME,
    REPAIRED_RTP_STREAM_ID,
    RTP_STREAM_ID,
    SDES_MID,
    TRANSPORT_WIDE_CC,
)
from router.rtp import (
    HeaderExtension,
    RtcpPacket,
    RtpPacket,
    make_extension_block,
    parse_rtcp_compound,
)

VP8 = "vp8/90000"
OPUS = "opus/48000/2"
PUB_EXT = {
    SDES_MID: 1,
    ABS_SEND_TIME: 2,
    TRANSPORT_WIDE_CC: 3,
    RTP_STREAM_ID: 4,
    REPAIRED_RTP_STREAM_ID: 5,
}
SUB_EXT = {ABS_SEND_TIME: 2}
"""Subscribers without transport-cc (the router writes abs-send-time); see test_subscriber_links."""


def make_forwarder(**config: object) -> Forwarder:
    cfg = ForwarderConfig(**config)  # type: ignore[arg-type]
    return Forwarder(cfg, rng=random.Random(7))


def video_track(
    track_id: str = "v",
    publisher: str = "pub",
    *,
    ssrc: int | None = 0x1000,
    rtx_ssrc: int | None = None,
    mid: str = "0",
    layers: tuple[LayerSpec, ...] | None = None,
    keyframe: str = "pli",
    extensions: dict[str, int] | None = None,
) -> TrackSpec:
    return TrackSpec(
        track_id,
        publisher,
        "video",
        90000,
        {96: VP8},
        rtx_payload_types={97: 96},
        extensions=PUB_EXT if extensions is None else extensions,
        mid=mid,
        layers=layers or (LayerSpec(ssrc=ssrc, rtx_ssrc=rtx_ssrc),),
        keyframe_request=keyframe,
    )


def audio_track(track_id: str = "a", publisher: str = "pub", *, ssrc: int = 0x2000) -> TrackSpec:
    return TrackSpec(
        track_id,
        publisher,
        "audio",
        48000,
        {111: OPUS},
        extensions={SDES_MID: 1},
        mid="1",
        layers=(LayerSpec(ssrc=ssrc),),
    )


def subscription(
    subscriber: str,
    track_id: str = "v",
    ssrc: int = 0xA000,
    *,
    codecs: dict[str, int] | None = None,
    rtx_ssrc: int | None = None,
    extensions: dict[str, int] | None = None,
) -> SubscriptionSpec:
    return SubscriptionSpec(
        subscriber,
        track_id,
        ssrc,
        codecs or {VP8: 96, OPUS: 111},
        rtx_ssrc=rtx_ssrc,
        rtx_payload_types={96: 97} if rtx_ssrc is not None else {},
        extensions=SUB_EXT if extensions is None else extensions,
    )


def rtp(
    seq: int,
    ts: int = 0,
    ssrc: int = 0x1000,
    pt: int = 96,
    payload: bytes = b"media",
    ext: dict[int, bytes] | None = None,
    marker: bool = False,
) -> bytes:
    block = None
    if ext:
        block = make_extension_block(HeaderExtension(i, v) for i, v in ext.items())
    return RtpPacket(
        pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, marker=marker, extension=block, payload=payload
    ).build()


def parsed(out: list[tuple[str, bytes]], who: str) -> list[RtpPacket]:
    return [RtpPacket.parse(data) for pid, data in out if pid == who]


def rtcp_for(out: list[tuple[str, bytes]], who: str) -> list[RtcpPacket]:
    return [p for pid, data in out if pid == who for p in parse_rtcp_compound(data)]


def room(
    fwd: Forwarder, subscribers: int = 1, *, now: float = 0.0, track: TrackSpec | None = None
) -> list[str]:
    """A publisher ``pub`` with one video track and subscribers ``s0..`` on it."""
    fwd.add_participant("pub")
    fwd.add_track(track or video_track(), now)
    names = []
    for i in range(subscribers):
        name = f"s{i}"
        fwd.add_participant(name)
        fwd.subscribe(subscription(name, ssrc=0xA000 + i), now)
        names.append(name)
    fwd.rtcp_to_send()
    return names
