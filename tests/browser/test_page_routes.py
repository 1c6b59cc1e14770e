"""The meeting page's routes, without a browser: the document, its headers, the static files,
and that the page never reaches outside the cluster (no absolute URLs in its code)."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

import trio
from starlette.applications import Starlette

from geo.frontdoor.page import STATIC_DIR, page_routes


async def get(path: str) -> tuple[int, dict[str, str], bytes]:
    app = Starlette(routes=page_routes())
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": [], "http_version": "1.1", "scheme": "http",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1), "root_path": ""}

    requested = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal requested
        if requested:  # the client stays connected: block like a real server would
            await trio.sleep_forever()
        requested = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], headers, body


async def test_room_page_is_served_with_a_strict_policy() -> None:
    status, headers, body = await get("/r/team-1")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert b'src="/static/main.js"' in body and b'type="module"' in body


async def test_bad_room_names_are_refused() -> None:
    status, _, _ = await get("/r/" + "x" * 65)
    assert status == 400
    status, _, _ = await get("/r/a.b")
    assert status == 400


async def test_static_modules_are_served() -> None:
    for name in ("main.js", "join.js", "signaling.js", "sfu.js", "p2p.js", "ui.js", "sizes.js",
                 "meeting.css"):
        status, headers, body = await get(f"/static/{name}")
        assert status == 200, name
        assert body
        if name.endswith(".js"):
            assert "javascript" in headers["content-type"]
    status, _, _ = await get("/static/../page.py")
    assert status == 404


def test_page_code_fetches_nothing_from_outside() -> None:
    absolute = re.compile(r"""(["'`])(https?:)?//[^"'`]*\1""")
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not absolute.search(text), f"{path.name} names an absolute URL"
        assert "innerHTML" not in text, f"{path.name} writes HTML from strings"
