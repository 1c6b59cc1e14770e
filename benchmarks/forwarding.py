"""Micro-benchmarks of the forwarding core (``router.forwarding``) for the ``regio bench`` runner.

``cases()`` returns named zero-argument callables, like :mod:`benchmarks.codec_rtp`. Each call
routes one packet through a prepared :class:`~router.forwarding.Forwarder` and drains the output
queue, so the figure is the whole per-packet cost the router pays (plus SRTP, measured
elsewhere). Packets carry the header extensions Chrome sends (abs-send-time, transport-wide
cc) and sequence numbers advance on every call, so the duplicate filter never short-cuts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.forwarding import LayerSpec

VIDEO_PAYLOAD = 1100
AUDIO_PAYLOAD = 120


def _setup(
    subscribers: int,
    *,
    kind: str = "video",
    same_ext_ids: bool = True,
    payload: int = VIDEO_PAYLOAD,
    loss_aware: bool = True,
) -> Callable[[], object]:
    from router.forwarding import Forwarder, ForwarderConfig, SubscriptionSpec, TrackSpec
    from router.forwarding.specs import ABS_SEND_TIME, SDES_MID, TRANSPORT_WIDE_CC
    from router.rtp import HeaderExtension, RtpPacket, make_extension_block

    clock = 90000 if kind == "video" else 48000
    codec = "vp8/90000" if kind == "video" else "opus/48000/2"
    pub_ext = {ABS_SEND_TIME: 2, TRANSPORT_WIDE_CC: 3}
    if not same_ext_ids:
        pub_ext[SDES_MID] = 4
    from router.forwarding.link_config import LinkConfig

    fwd = Forwarder(ForwarderConfig(cname=None, link=LinkConfig(enabled=loss_aware)))
    fwd.add_participant("pub")
    fwd.add_track(
        TrackSpec(
            "t",
            "pub",
            kind,
            clock,
            {96: codec},
            extensions=pub_ext,
            mid="0",
            layers=(_layer(0x1000),),
        ),
        0.0,
    )
    sub_ext = {ABS_SEND_TIME: 2, TRANSPORT_WIDE_CC: 3}
    for i in range(subscribers):
        fwd.add_participant(f"s{i}")
        fwd.subscribe(
            SubscriptionSpec(f"s{i}", "t", 0x2000 + i, {codec: 96}, extensions=sub_ext), 0.0
        )
    fwd.rtcp_to_send()
    base = RtpPacket(
        payload_type=96,
        sequence_number=0,
        timestamp=0,
        ssrc=0x1000,
        extension=make_extension_block(
            (HeaderExtension(2, b"\x12\x34\x56"), HeaderExtension(3, b"\x01\x04"))
        ),
        payload=bytes(payload),
    ).build()
    seq_now = [0, 0.0]
    packet = bytearray(base)
    route = fwd.route_rtp
    drain = fwd.rtp_to_send

    def run() -> object:
        seq = (int(seq_now[0]) + 1) & 0xFFFF
        now = seq_now[1] + 0.001
        seq_now[0], seq_now[1] = seq, now
        packet[2] = seq >> 8
        packet[3] = seq & 0xFF
        packet[7] = seq & 0xFF
        route("pub", bytes(packet), now)
        return drain()

    return run


def _layer(ssrc: int) -> LayerSpec:
    from router.forwarding import LayerSpec

    return LayerSpec(ssrc=ssrc)


def _receiver_reports(streams: int) -> Callable[[], object]:
    from router.forwarding import Forwarder, ForwarderConfig, LayerSpec, TrackSpec
    from router.rtp import RtpPacket

    fwd = Forwarder(ForwarderConfig())
    fwd.add_participant("pub")
    for i in range(streams):
        fwd.add_track(
            TrackSpec(
                f"t{i}",
                "pub",
                "video",
                90000,
                {96: "vp8/90000"},
                layers=(LayerSpec(ssrc=0x1000 + i),),
            ),
            0.0,
        )
        for seq in range(10):
            fwd.route_rtp(
                "pub", RtpPacket(96, seq, seq * 3000, 0x1000 + i, payload=b"x").build(), seq * 0.03
            )
    clock = [10.0]

    def run() -> object:
        clock[0] += 2.0
        fwd.handle_timer(clock[0])
        return fwd.rtcp_to_send()

    return run


def cases() -> list[tuple[str, Callable[[], object]]]:
    """Named zero-argument callables; figures are per incoming packet (divide by fan-out)."""
    out: list[tuple[str, Callable[[], object]]] = [
        ("forward: bytes copy of 1100-byte packet (baseline)", _baseline()),
        ("forward: video 1100 B to 1 subscriber", _setup(1)),
        ("forward: video 1100 B to 10 subscribers", _setup(10)),
        ("forward: video 1100 B to 10 subscribers, loss-aware off",
         _setup(10, loss_aware=False)),
        ("forward: video to 10 subscribers, ext ids rewritten", _setup(10, same_ext_ids=False)),
        ("forward: audio 120 B to 10 subscribers", _setup(10, kind="audio", payload=AUDIO_PAYLOAD)),
        ("forward: video 1100 B to 50 subscribers", _setup(50)),
        ("rtcp: receiver report for 10 streams", _receiver_reports(10)),
    ]
    return out


def _baseline() -> Callable[[], object]:
    packet = bytes(1124)

    def run() -> object:
        return bytes(bytearray(packet))

    return run
