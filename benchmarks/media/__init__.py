"""Realistic WebRTC media load, sans-IO: what Chromium publishers and subscribers put on the wire.

Benchmarks that push media through a router (``regio bench sfu``, loss, trunk, failover) share
this load so their figures mean the same thing: VP8-shaped video at 30 fps in ~1,100-byte
packets with a real payload descriptor and a keyframe burst every 2 s (optionally simulcast),
Opus-sized audio at 50 packets/s, Chromium's header extensions (mid, abs-send-time,
transport-wide-cc, rid, audio level) encoded with the project's RTP codec, and RTCP at
Chromium's rates (SR from publishers; RR, NACK, PLI and TWCC feedback from subscribers).

Nothing here reads a clock or touches a socket: sources take ``now`` and give packets; a stamp
in the last 16 payload bytes (:mod:`benchmarks.media.stamp`) lets a receiver measure latency and
loss per stream after any header rewrite.
"""

from benchmarks.media.extensions import (
    CHROMIUM_AUDIO,
    CHROMIUM_VIDEO,
    ExtensionIds,
    HeaderTemplate,
    abs_send_time,
)
from benchmarks.media.rtcp import ReceiverFeedback, SenderReports, ntp_timestamp
from benchmarks.media.stamp import TAIL_SIZE, read_tail, write_tail
from benchmarks.media.streams import (
    CHROMIUM_SIMULCAST,
    AudioStream,
    MediaPacket,
    Publisher,
    SimulcastLayer,
    TransportSequence,
    VideoStream,
)
from benchmarks.media.vp8 import Vp8Descriptor, Vp8Error, frame_header, is_keyframe_start

__all__ = [
    "CHROMIUM_AUDIO",
    "CHROMIUM_SIMULCAST",
    "CHROMIUM_VIDEO",
    "TAIL_SIZE",
    "AudioStream",
    "ExtensionIds",
    "HeaderTemplate",
    "MediaPacket",
    "Publisher",
    "ReceiverFeedback",
    "SenderReports",
    "SimulcastLayer",
    "TransportSequence",
    "VideoStream",
    "Vp8Descriptor",
    "Vp8Error",
    "abs_send_time",
    "frame_header",
    "is_keyframe_start",
    "ntp_timestamp",
    "read_tail",
    "write_tail",
]
