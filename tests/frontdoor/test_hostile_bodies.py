"""Issue 15 item 5: hostile JSON bodies at the front door get 400/413 with a precise message,
never a 500 and never a traceback in the log (real sockets, the front door's own server)."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from tests.frontdoor.test_fastserver import connect, join, make_app, serving

NESTED = b"[" * 1200 + b"]" * 1200


@pytest.mark.parametrize(("body", "status", "error"), [
    (b"[" * 3000, 400, "invalid_request"),
    (NESTED, 400, "invalid_request"),
    (b'{"name":' + b"[" * 10 + b"1" + b"]" * 10 + b"}", 400, "invalid_request"),
    (b'{"name":' + b"1" * 5000 + b"}", 400, "invalid_request"),
    (b'{"name":"' + b"\\\\" * 3000 + b'"', 400, "invalid_request"),
    (b"\xff\xfe\x00{", 400, "invalid_request"),
    (b"{" * 9000, 413, "body_too_large"),
    (b'{"name":"' + b"x" * 9000 + b'"}', 413, "body_too_large"),
])
async def test_hostile_bodies(body: bytes, status: int, error: str,
                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with serving(make_app(max_body=8192)) as (_, port):
        stream, reader = await connect(port)
        await stream.send_all(join("hostile", body=body))
        got, _, answer = await reader.response()
        assert (got, json.loads(answer)["error"]) == (status, error), answer[:200]
        if status == 400:  # the connection stays usable
            await stream.send_all(join("after"))
            assert (await reader.response())[0] == 200
        await stream.aclose()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_rejoin_token_with_a_nested_header(caplog: pytest.LogCaptureFixture) -> None:
    """The rejoin token's header is decoded before its signature is checked: nesting there is
    a 400 ``invalid_rejoin`` too."""
    header = base64.urlsafe_b64encode(b"[" * 2900).rstrip(b"=").decode()
    body = json.dumps({"rejoin": f"{header}.e30.c2ln"}).encode()
    async with serving(make_app(max_body=8192)) as (_, port):
        stream, reader = await connect(port)
        await stream.send_all(join("rejoin", body=body))
        status, _, answer = await reader.response()
        assert (status, json.loads(answer)["error"]) == (400, "invalid_rejoin"), answer
        await stream.aclose()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
