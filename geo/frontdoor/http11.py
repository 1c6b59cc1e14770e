"""A strict, small HTTP/1.1 request parser (sans-IO) for the front door's own server.

Why not h11: under Hypercorn the h11 state machine, its event objects and the task per request
cost about three quarters of a join's server time (profile in benchmarks/RESULTS.md); the join
API needs a fraction of HTTP/1.1. This module accepts exactly that fraction and rejects
everything else with a precise status, so what it does accept is unambiguous:

- request line ``METHOD SP request-target SP HTTP/1.x CRLF`` (RFC 9112 §3), origin-form or
  absolute-form targets of visible ASCII; leading empty lines are skipped (§2.2);
- header fields ``token ":" OWS value OWS CRLF``; no obs-fold, no whitespace before the colon,
  no bare CR or LF (§5), a bare LF refused as soon as it arrives, even one ending the request
  line; at most ``max_headers`` fields and ``max_head`` bytes of head (431),
  a request line of at most ``max_line`` bytes (414);
- bodies framed by ``Content-Length`` only (at most ``max_body`` bytes, else 413 before the body
  is read); ``Transfer-Encoding`` is refused (411 for chunked, 501 for other codings), and
  both framings at once are a 400 (request smuggling);
- exactly one ``Host`` in HTTP/1.1 (§3.2); ``Expect: 100-continue`` is reported, any other
  expectation is 417; ``Connection: close``/``keep-alive`` and HTTP/1.0 defaults (§9.3);
- other HTTP/1.x minor versions are read as 1.1, HTTP/2+ is 505.

Errors are raised as :class:`HttpError` and decided by the earliest offending bytes, so a
stream parses the same however it is split into reads (the hypothesis tests check this). After
an error the connection must be closed: the framing of what follows is unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(" + TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
_TOKEN_BYTES = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Bytes a header section may hold: field-value bytes (RFC 9110 §5.5: SP, HTAB, VCHAR,
# obs-text) and the CR LF that end lines (paired: checked by counting).
_FIELD_BYTES = bytes([9, 10, 13, *range(0x20, 0x7F), *range(0x80, 0x100)])
_SPECIAL = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection",
                      b"expect"})

MAX_LINE = 8 * 1024
MAX_HEAD = 16 * 1024
MAX_HEADERS = 100
MAX_BODY = 64 * 1024

REASONS: dict[int, str] = {
    100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content",
    301: "Moved Permanently", 302: "Found", 304: "Not Modified", 307: "Temporary Redirect",
    308: "Permanent Redirect", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
    411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
    416: "Range Not Satisfiable", 417: "Expectation Failed", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
}


class HttpError(Exception):
    """A request this server will not process; answer ``status`` and close the connection.

    ``target`` is the request target when the request line was already read (the server uses
    it to account a refused join as one)."""

    def __init__(self, status: int, message: str, target: bytes | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.target = target


@dataclass(slots=True)
class Request:
    """One parsed request. Header names are lower-case; values are as received (bytes)."""

    method: str
    target: bytes
    path: bytes
    query: bytes
    version: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool
    expect_continue: bool


@dataclass(slots=True)
class _Head:
    request: Request
    length: int


def _split_target(target: bytes) -> tuple[bytes, bytes]:
    """(path, query) of an origin-form or absolute-form target (400 otherwise)."""
    if b"#" in target:
        raise HttpError(400, "request target must not contain a fragment", target)
    if target[:1] != b"/":
        scheme = target[:8].lower()
        if scheme.startswith((b"http://", b"https://")):
            rest = target[target.index(b"//") + 2:]
            cut = len(rest)
            for stop in (b"/", b"?"):
                at = rest.find(stop)
                if 0 <= at < cut:
                    cut = at
            if cut == 0:
                raise HttpError(400, "absolute-form target without a host", target)
            target = rest[cut:] if rest[cut:cut + 1] == b"/" else b"/" + rest[cut:]
        elif target == b"*":
            return b"*", b""
        else:
            raise HttpError(400, "request target must be origin-form (/path) or absolute-form",
                            target)
    path, _, query = target.partition(b"?")
    return path, query


class RequestParser:
    """Feed bytes with :meth:`feed`, take requests with :meth:`next_request`."""

    def __init__(self, *, max_line: int = MAX_LINE, max_head: int = MAX_HEAD,
                 max_headers: int = MAX_HEADERS, max_body: int = MAX_BODY) -> None:
        self.max_line = max_line
        self.max_head = max_head
        self.max_headers = max_headers
        self.max_body = max_body
        self._buffer = bytearray()
        self._pending: _Head | None = None
        self._scan_from = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def idle(self) -> bool:
        """True when no part of a request is buffered (between requests)."""
        return not self._buffer and self._pending is None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def waiting_for_body(self) -> Request | None:
        """The request whose head was read and whose body is still incomplete, if any (the
        server answers ``100 Continue`` to it when it asked)."""
        return self._pending.request if self._pending is not None else None

    def next_request(self) -> Request | None:
        """The next complete request, or None until more bytes arrive; raises HttpError."""
        head = self._pending
        if head is None:
            head = self._read_head()
            if head is None:
                return None
        buffer = self._buffer
        length = head.length
        if len(buffer) < length:
            self._pending = head
            return None
        self._pending = None
        request = head.request
        if length:
            request.body = bytes(buffer[:length])
            del buffer[:length]
        return request

    def _read_head(self) -> _Head | None:
        buffer = self._buffer
        while buffer[:2] == b"\r\n":
            del buffer[:2]
            self._scan_from = 0
        first_lf = buffer.find(b"\n")
        if first_lf >= 0 and buffer[first_lf - 1 : first_lf] != b"\r":
            # A request line ended by a bare LF: refused as soon as the LF arrives (waiting
            # for a CRLF that such a client never sends would hold the connection until the
            # request timeout). Longer than a request line may be, it is a 414 however the
            # bytes were split into reads.
            if first_lf > self.max_line:
                raise HttpError(414, f"request line longer than {self.max_line} bytes")
            raise HttpError(400, "the request line must end with CRLF")
        end = buffer.find(b"\r\n\r\n", self._scan_from)
        if end < 0:
            self._scan_from = max(0, len(buffer) - 3)
            if buffer:
                self._check_partial()
            return None
        self._scan_from = 0
        head = bytes(buffer[:end + 2])
        del buffer[:end + 4]
        return self._parse_head(head, end + 4)

    def _check_partial(self) -> None:
        """Refuse an incomplete head as early as its bytes allow, exactly as the complete
        head would be refused (so the outcome does not depend on how reads split it)."""
        buffer = self._buffer
        line_end = buffer.find(b"\r\n")
        if line_end < 0:
            if len(buffer) - (buffer[-1:] == b"\r") > self.max_line:
                raise HttpError(414, f"request line longer than {self.max_line} bytes")
            return
        target = self._request_line(bytes(buffer[:line_end]))[1]
        if _has_bare_lf(buffer, line_end + 2, self.max_head):
            raise HttpError(400, "header lines must end with CRLF", target)
        if len(buffer) > self.max_head:
            raise HttpError(431, f"request head larger than {self.max_head} bytes", target)

    def _request_line(self, line: bytes) -> tuple[str, bytes, str]:
        if len(line) > self.max_line:
            raise HttpError(414, f"request line longer than {self.max_line} bytes")
        match = _REQUEST_LINE.fullmatch(line)
        if match is None:
            raise HttpError(400, "malformed request line")
        method, target, major, minor = match.groups()
        if major != b"1":
            raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are served here", target)
        return method.decode("ascii"), target, "1.0" if minor == b"0" else "1.1"

    def _parse_head(self, head: bytes, size: int) -> _Head:
        line_end = head.find(b"\r\n")
        method, target, version = self._request_line(head[:line_end])
        if _has_bare_lf(head, line_end + 2, self.max_head):
            raise HttpError(400, "header lines must end with CRLF", target)
        if size > self.max_head:
            raise HttpError(431, f"request head larger than {self.max_head} bytes", target)
        block = head[line_end + 2:]
        if block.translate(None, _FIELD_BYTES) or block.count(b"\r") != block.count(b"\n"):
            raise HttpError(400, "control characters in the header section", target)
        lines = block.split(b"\r\n")
        lines.pop()  # after the last CRLF
        if len(lines) > self.max_headers:
            raise HttpError(431, f"more than {self.max_headers} header fields", target)
        headers: list[tuple[bytes, bytes]] = []
        append = headers.append
        hosts = 0
        length: bytes | None = None
        transfer: bytes | None = None
        connection = b""
        expect = False
        for line in lines:
            name, colon, value = line.partition(b":")
            if not colon or not name:
                raise HttpError(400, "malformed header field", target)
            name = name.lower()
            value = value.strip(b" \t")
            append((name, value))
            if name not in _SPECIAL:
                continue
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                if length is not None and value != length:
                    raise HttpError(400, "conflicting Content-Length fields", target)
                length = value
            elif name == b"transfer-encoding":
                transfer = value if transfer is None else transfer + b"," + value
            elif name == b"connection":
                connection += b"," + value.lower()
            elif value.lower() != b"100-continue":  # expect
                raise HttpError(417, "only 'Expect: 100-continue' is understood", target)
            else:
                expect = True
        if b"".join([name for name, _ in headers]).translate(None, _TOKEN_BYTES):
            raise HttpError(400, "malformed header field name", target)
        if hosts > 1 or (hosts == 0 and version == "1.1"):
            raise HttpError(400, "HTTP/1.1 requests need exactly one Host field", target)
        if transfer is not None:
            if length is not None:
                raise HttpError(400, "Content-Length and Transfer-Encoding together", target)
            if version == "1.0":
                raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request", target)
            last = transfer.rsplit(b",", 1)[-1].strip(b" \t").lower()
            if last == b"chunked":
                raise HttpError(411, "chunked bodies are not accepted: send Content-Length",
                                target)
            raise HttpError(501, "unsupported Transfer-Encoding", target)
        size_body = 0
        if length is not None:
            if not length.isdigit() or len(length) > 18:
                raise HttpError(400, "malformed Content-Length", target)
            size_body = int(length)
            if size_body > self.max_body:
                raise HttpError(413, f"request bodies are at most {self.max_body} bytes",
                                target)
        if target[:1] == b"/" and b"#" not in target:
            path, _, query = target.partition(b"?")
        else:
            path, query = _split_target(target)
        if version == "1.1":
            keep_alive = b"close" not in _tokens(connection) if connection else True
        else:
            keep_alive = b"keep-alive" in _tokens(connection) if connection else False
        request = Request(method, target, path, query, version, headers, b"", keep_alive,
                          expect and size_body > 0)
        return _Head(request, size_body)


def _has_bare_lf(data: bytes | bytearray, start: int, end: int) -> bool:
    """True if a LF in ``data[start:end]`` is not preceded by CR (``data[start - 1]`` is the
    LF of the request line, so no CRLF begins before ``start``)."""
    return data.count(b"\n", start, end) != data.count(b"\r\n", start, end)


def _tokens(value: bytes) -> set[bytes]:
    return {part.strip(b" \t") for part in value.split(b",")}


__all__ = ["MAX_BODY", "MAX_HEAD", "MAX_HEADERS", "MAX_LINE", "REASONS", "HttpError",
           "Request", "RequestParser"]
