"""Error hierarchy of the ``turn`` package (ARCHITECTURE.md §3).

Callers need to tell "we misused the API" from "the peer sent garbage": the first is a bug to fix,
the second is routine on the Internet and must end as a dropped packet plus a counter.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error raised by a ``turn`` protocol core or codec."""


class LocalProtocolError(ProtocolError):
    """We used the API wrongly (an invalid value to encode, a call in the wrong state)."""


class RemoteProtocolError(ProtocolError):
    """The peer's bytes or behaviour broke the protocol; drop and count, never crash."""
