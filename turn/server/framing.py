"""ChannelData framing as a TURN node's configuration asks for it, on top of the codec.

With ``rfc5766_channels`` (the default) a node accepts channel numbers from RFC 5766's range
0x4000-0x7FFF, which coturn's clients still use; the codec's ``allow_rfc5766_range`` option
does the framing (:class:`~turn.stun.StreamReassembler` and
:func:`~turn.stun.encode_channel_data`), with every length check of the strict mode kept.
"""

from __future__ import annotations

from turn.stun import StreamReassembler, encode_channel_data
from turn.stun.header import Buffer


def stream_reassembler(rfc5766_channels: bool) -> StreamReassembler:
    """The reassembler for one TCP/TLS client connection."""
    return StreamReassembler(allow_rfc5766_range=rfc5766_channels)


def frame_channel_data(channel: int, data: Buffer, pad: bool, rfc5766_channels: bool) -> bytes:
    """ChannelData bytes for a client (``pad`` over TCP/TLS).

    ``channel`` comes from our own binding table, which only holds numbers ChannelBind
    validated against the same ``rfc5766_channels`` setting.
    """
    return encode_channel_data(channel, data, pad=pad, allow_rfc5766_range=rfc5766_channels)


__all__ = ["frame_channel_data", "stream_reassembler"]
