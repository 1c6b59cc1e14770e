"""Errors of ``router.sdp``.

Remote SDP arrives over signaling from a browser or a synthetic client; a malformed one must end
as an error message to that client, never as a crash. :class:`SdpError` is the only exception
the parser and the offer/answer functions raise on remote input, and its message names the line
(1-based, as a developer would count it in the SDP text) so a client author can find the fault.
:class:`SdpUsageError` is our own misuse (an invalid value given to a builder): a bug to fix.
"""

from __future__ import annotations

from router.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["SdpError", "SdpUsageError"]


class SdpError(RemoteProtocolError):
    """Remote SDP is malformed or cannot be negotiated.

    ``line`` is the 1-based line number of the offending line when there is one; ``reason`` is
    the message without the line prefix (handy for signaling error payloads).
    """

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(f"line {line}: {reason}" if line else reason)


class SdpUsageError(LocalProtocolError):
    """A value given to an SDP builder cannot be expressed (our bug, not the peer's)."""
