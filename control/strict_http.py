"""HTTP/1.1 request heads must end their lines with CRLF on every listener we run (issue 15
item 8): a bare LF is answered 400 and the connection closed, at once.

RFC 9112 §2.2 lets a server accept a bare LF as a line end, and h11 (under Hypercorn: the
routers' signaling and metrics listeners, the front door's operator listener and its
``--http-server hypercorn`` mode) and the standard library's ``http.server`` (under the TURN
node's status listener) both do. Lenient parsing is what request smuggling feeds on: a proxy in
front that splits lines differently from us sees other requests than we do. The front door's
own HTTP/1.1 server (``geo/frontdoor/http11.py``) refuses bare LFs itself; this module makes
the library servers refuse them too, so every public listener answers the same.

Hypercorn offers no hook for its HTTP/1.1 parser: :func:`install_strict_hypercorn` swaps the
protocol class its connection wrapper builds for one whose h11 connection refuses bare LFs in
a request head. It relies on two library internals (``hypercorn.protocol.H11Protocol`` looked
up at connection time, and ``h11.Connection._extract_next_receive_event``, whose exceptions
h11 turns into a 400 with the peer's state set to ERROR); tests/control/test_strict_http.py
sends raw bare-LF requests to every listener and fails loudly when either changes.
"""

from __future__ import annotations

from typing import IO, Any

import h11

HEAD_END = b"\r\n\r\n"


def has_bare_lf(received: bytes) -> bool:
    """True if the request head at the start of ``received`` (what has arrived so far, maybe
    not all of it) holds a LF without a CR before it. Empty lines before the request line
    (RFC 9112 §2.2) are skipped; bytes after the head's end (a body, the next request) are not
    looked at."""
    start = 0
    while received.startswith(b"\r\n", start):
        start += 2
    end = received.find(HEAD_END, start)
    stop = len(received) if end < 0 else end + len(HEAD_END)
    return received.count(b"\n", start, stop) != received.count(b"\r\n", start, stop)


class StrictH11Connection(h11.Connection):
    """An h11 connection that refuses a request head with a bare LF (400) as soon as the LF
    has arrived, instead of parsing it as a line end."""

    def _extract_next_receive_event(self) -> Any:
        if self.their_state is h11.IDLE and has_bare_lf(self.trailing_data[0]):
            raise h11.RemoteProtocolError("request head lines must end with CRLF",
                                          error_status_hint=400)
        return super()._extract_next_receive_event()


def install_strict_hypercorn() -> None:
    """Make every Hypercorn server in this process parse HTTP/1.1 with
    :class:`StrictH11Connection` (idempotent; HTTP/2 and WebSocket frames are unaffected)."""
    import hypercorn.protocol as protocol
    from hypercorn.protocol.h11 import H11Protocol

    if getattr(getattr(protocol, "H11Protocol"), "strict_lines", False):  # noqa: B009
        return

    class StrictH11Protocol(H11Protocol):
        strict_lines = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.connection = StrictH11Connection(
                h11.SERVER, max_incomplete_event_size=self.config.h11_max_incomplete_size)

    setattr(protocol, "H11Protocol", StrictH11Protocol)  # noqa: B010


class CrlfLineReader:
    """Wraps the stream ``http.server`` reads a request head from with ``readline``, noting
    any line that ends in a bare LF (``bare_lf``) so the handler can refuse the request."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.bare_lf = False

    def readline(self, size: int = -1) -> bytes:
        line = self.raw.readline(size)
        if line.endswith(b"\n") and not line.endswith(b"\r\n"):
            self.bare_lf = True
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


__all__ = ["CrlfLineReader", "StrictH11Connection", "has_bare_lf", "install_strict_hypercorn"]
