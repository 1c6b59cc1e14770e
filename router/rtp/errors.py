"""Codec errors of ``router.rtp``: one decode error per wire family, one encode error per family.

Decode errors are :class:`~router.errors.RemoteProtocolError` (the peer sent garbage: drop the
datagram and count it); encode errors are :class:`~router.errors.LocalProtocolError` (our own
code asked for a value the wire cannot carry: a bug to fix). Nothing else may escape a codec,
whatever bytes arrive, so drivers need exactly one ``except`` per family.
"""

from __future__ import annotations

from router.errors import LocalProtocolError, RemoteProtocolError


class RtpDecodeError(RemoteProtocolError):
    """An RTP packet (fixed header, CSRCs, header extension or padding) is malformed."""


class RtcpDecodeError(RemoteProtocolError):
    """An RTCP compound packet or one of its packets (TWCC included) is malformed."""


class RtpEncodeError(LocalProtocolError):
    """An RTP value given to a builder or in-place rewriter does not fit the wire format."""


class RtcpEncodeError(LocalProtocolError):
    """An RTCP value given to a builder does not fit the wire format."""
