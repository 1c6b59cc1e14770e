"""The TURN node's HTTP listener: ``/healthz`` for probes and ``/metrics`` on one port, over a
real TURN server and a real HTTP client on loopback."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import trio

from tests.turn.conftest import turn_config
from tests.turn.netclient import NetClient
from turn.server.node import _serve_metrics


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


async def test_healthz_and_metrics_share_the_listener(start_server: Any) -> None:
    server = await start_server(turn_config())
    httpd, _registry = _serve_metrics(server, "127.0.0.1:0")
    try:
        base = "http://{}:{}".format(*server.addresses.metrics)
        client = NetClient("udp", server.addresses.udp[0])
        await client.connect()
        await client.allocate()
        status, kind, body = await trio.to_thread.run_sync(_get, base + "/healthz")
        assert status == 200 and kind == "application/json"
        health = json.loads(body)
        assert health == {"status": "ok", "region": server.config.region, "draining": False,
                          "allocations": 1, "quota": server.config.total_quota}
        server.drain()
        _, _, body = await trio.to_thread.run_sync(_get, base + "/healthz")
        assert json.loads(body)["draining"] is True  # still 200: it relays what it has
        status, _, text = await trio.to_thread.run_sync(_get, base + "/metrics")
        assert status == 200 and b"regio_turn_allocations{" in text
        await client.close()
    finally:
        httpd.shutdown()


async def test_bare_lf_heads_get_400_at_once(start_server: Any) -> None:
    """Issue 15 item 8: ``http.server`` alone would take a bare LF as a line end (and wait for
    headers after a bare-LF request line)."""
    from tests.control.test_strict_http import BARE_LF_REQUESTS, bare_lf_refused

    server = await start_server(turn_config())
    httpd, _registry = _serve_metrics(server, "127.0.0.1:0")
    try:
        port = server.addresses.metrics[1]
        for request in BARE_LF_REQUESTS:
            status = await bare_lf_refused(port, request)
            assert status.startswith(b"HTTP/1.0 400"), (request, status)
        status = await bare_lf_refused(port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert status.startswith(b"HTTP/1.0 200"), "a CRLF request is still served"
    finally:
        httpd.shutdown()
