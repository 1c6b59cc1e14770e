"""Errors of the STUN/TURN wire codec.

One remote error type, :class:`StunDecodeError`, covers every malformed input so a driver needs a
single ``except`` to turn hostile bytes into a dropped packet plus a counter (ARCHITECTURE.md §3).
Its subclasses only refine what the caller does next: a failed integrity check is answered with
401 rather than dropped, and a framing error on a TCP/TLS stream means the connection has lost
sync and must be closed.
"""

from __future__ import annotations

from turn.errors import LocalProtocolError, RemoteProtocolError


class StunDecodeError(RemoteProtocolError):
    """Bytes from the peer are not a well-formed STUN message, attribute or ChannelData frame."""


class StunIntegrityError(StunDecodeError):
    """MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 is missing or does not match the key."""


class StunFramingError(StunDecodeError):
    """A TCP/TLS byte stream cannot be split into frames any more; close the connection."""


class StunEncodeError(LocalProtocolError):
    """We asked the codec to encode a value the wire format cannot carry."""
