"""Issue 15 item 8: a request head with a bare LF is answered 400 at once, and the connection
closed, by every HTTP listener we run. The rule (:func:`control.strict_http.has_bare_lf`) is
property-tested here; :func:`bare_lf_refused` is the raw-socket check the listeners' tests use
(router signaling and metrics: tests/router/test_bare_lf.py; front door join port in both
server modes and operator listener: tests/frontdoor/test_http_hardening.py; TURN status
listener: tests/turn/test_status_http.py)."""

from __future__ import annotations

import trio
from hypothesis import given
from hypothesis import strategies as st

from control.strict_http import has_bare_lf

BARE_LF_REQUESTS = (
    b"GET /healthz HTTP/1.1\nHost: t\n\n",
    b"GET /metrics HTTP/1.1\r\nHost: t\n\r\n",
    b"GET / HTTP/1.1\n",
)
"""Complete and incomplete heads: the last could wait for more forever if not refused."""

ANSWER_WAIT = 4.0
"""Seconds a listener gets to answer: far below the 5-10 s a server waits for the rest of a
request or an idle keep-alive connection, so an answer in time can only be the refusal."""


async def bare_lf_refused(port: int, request: bytes, host: str = "127.0.0.1") -> bytes:
    """Send ``request`` on a raw connection; the status line of the answer, which must come
    within :data:`ANSWER_WAIT` and be followed by the connection's close."""
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(request)
        received = b""
        with trio.fail_after(ANSWER_WAIT):
            while chunk := await stream.receive_some(4096):
                received += chunk
    return received.split(b"\r\n", 1)[0]


_field_line = st.from_regex(rb"\A[A-Za-z-]{1,12}: [ -~]{0,20}\Z")
_request_line = st.sampled_from([b"GET / HTTP/1.1", b"POST /v1/rooms/r/join HTTP/1.1",
                                 b"GET /metrics HTTP/1.0"])


@st.composite
def _heads(draw: st.DrawFn) -> bytes:
    lines = [draw(_request_line), *draw(st.lists(_field_line, max_size=5))]
    blank = b"\r\n" * draw(st.integers(0, 2))
    return blank + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


@given(_heads(), st.binary(max_size=40), st.data())
def test_crlf_heads_pass_and_any_bare_lf_in_them_is_found(head: bytes, after: bytes,
                                                            data: st.DataObject) -> None:
    # A well-formed head passes whatever follows it (a body, the next request) and
    # however little of it has arrived.
    assert not has_bare_lf(head + after)
    cut = data.draw(st.integers(0, len(head)))
    assert not has_bare_lf(head[:cut])
    # Dropping the CR of any CRLF of the head (the line ends and the final empty line) is
    # found as soon as that LF has arrived, before the rest of the head.
    crlfs = [i for i in range(len(head) - 1) if head[i:i + 2] == b"\r\n"]
    leading = len(head) - len(head.lstrip(b"\r\n"))
    crlfs = [i for i in crlfs if i >= leading]
    at = data.draw(st.sampled_from(crlfs))
    broken = head[:at] + head[at + 1:]
    assert has_bare_lf(broken[:at + 1])
    assert has_bare_lf(broken + after)


def test_bare_lf_examples() -> None:
    for request in BARE_LF_REQUESTS:
        assert has_bare_lf(request), request
    assert not has_bare_lf(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n{\n}")
    assert not has_bare_lf(b"\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n")
    assert has_bare_lf(b"\r\n\nGET / HTTP/1.1\r\n")
