"""Values of the RTP header extensions an SFU reads on every packet.

* abs-send-time (``http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time``): 24-bit
  6.18 fixed-point seconds, i.e. bits 14..37 of the 64-bit NTP timestamp.
* transport-wide sequence number
  (``http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01``): 16 bits,
  the number TWCC feedback refers to, rewritten by an SFU that originates its own feedback.
"""

from __future__ import annotations

from router.rtp.errors import RtpDecodeError, RtpEncodeError

__all__ = [
    "decode_abs_send_time",
    "decode_transport_seq",
    "encode_abs_send_time",
    "encode_transport_seq",
]

Buffer = bytes | bytearray | memoryview


def decode_abs_send_time(data: Buffer) -> int:
    """The 24-bit 6.18 fixed-point send time (1/262144 s units, wraps every 64 s)."""
    if len(data) != 3:
        raise RtpDecodeError(f"abs-send-time extension must be 3 bytes, got {len(data)}")
    return (data[0] << 16) | (data[1] << 8) | data[2]


def encode_abs_send_time(value: int) -> bytes:
    """Wire form of a 24-bit 6.18 send time."""
    if not 0 <= value <= 0xFFFFFF:
        raise RtpEncodeError(f"abs-send-time {value} out of range 0..16777215")
    return value.to_bytes(3, "big")


def decode_transport_seq(data: Buffer) -> int:
    """The transport-wide sequence number."""
    if len(data) != 2:
        raise RtpDecodeError(f"transport-wide sequence extension must be 2 bytes, got {len(data)}")
    return (data[0] << 8) | data[1]


def encode_transport_seq(value: int) -> bytes:
    """Wire form of a transport-wide sequence number."""
    if not 0 <= value <= 0xFFFF:
        raise RtpEncodeError(f"transport-wide sequence number {value} out of range 0..65535")
    return value.to_bytes(2, "big")
