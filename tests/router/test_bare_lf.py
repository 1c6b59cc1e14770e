"""Issue 15 item 8 on the router's listeners: a bare-LF request head gets 400 and a closed
connection at once on the signaling port and on the metrics listener (Hypercorn would take a
bare LF as a line end)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.control.test_strict_http import BARE_LF_REQUESTS, bare_lf_refused
from tests.router.conftest import StartRouter


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@pytest.mark.parametrize("request_bytes", BARE_LF_REQUESTS)
async def test_router_listeners_refuse_bare_lf(start_router: StartRouter,
                                               request_bytes: bytes) -> None:
    node = await start_router(metrics="127.0.0.1:0")
    for url in (node.addresses.signaling_url, node.addresses.metrics_url):
        status = await bare_lf_refused(_port(url), request_bytes)
        assert status.startswith(b"HTTP/1.1 400"), (url, status)
    status = await bare_lf_refused(_port(node.addresses.metrics_url),
                                   b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200"), "a CRLF request is still served"
