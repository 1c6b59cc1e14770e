"""The front door's HTTP surface: a Starlette app with a raw-ASGI fast path for joins.

``POST /v1/rooms/{room}/join`` is handled by :class:`FrontdoorApp` directly on the ASGI
messages: it is the one hot endpoint, and Starlette's routing, request and response objects
cost about a third of a join's server time under Hypercorn. Everything else (``/healthz``,
the meeting page ``/r/{room}`` with its ``/static/`` files, 404/405 answers, lifespan) is a
plain Starlette app.

``/metrics`` and ``/v1/prometheus/targets`` are not on the public join port: they tell anyone
who asks the cluster's internal addresses and its traffic. :func:`operator_app` serves them
on the ``--metrics-listen`` listener, which the operator keeps off the public network.

The body limit is enforced before the body is read (``Content-Length``) and while it is read
(chunked bodies), so a large body never reaches memory: 413.

Answers carry ``Cache-Control: no-store``: they contain credentials. Nothing here logs or
stores the client's address; access logging, when enabled, writes its truncated /24 or /48.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from control.logs import get_logger, truncate_address
from geo.frontdoor.page import page_routes
from geo.frontdoor.service import JoinAnswer, JoinService, error
from geo.frontdoor.snapshot import metrics_target

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = get_logger("geo.frontdoor.http")
access_log = get_logger("geo.frontdoor.access")

JOIN_PREFIX = "/v1/rooms/"
JOIN_SUFFIX = "/join"


class BodyTooLarge(Exception):
    pass


def _encode(answer: JoinAnswer) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    payload = json.dumps(answer.body, separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in answer.headers]
    return payload, headers


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                if int(value) > limit:
                    raise BodyTooLarge
            except ValueError:
                pass
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class FrontdoorApp:
    """The ASGI application Hypercorn serves."""

    def __init__(self, service: JoinService, health: Callable[[], dict[str, Any]]) -> None:
        self.service = service
        self.health = health
        self.max_body = service.config.max_body
        self.access_log = service.config.access_log
        self.starlette = Starlette(routes=[
            Route("/healthz", self._healthz, methods=["GET", "HEAD"]),
            Route("/v1/rooms/{room:path}/join", self._join_slow, methods=["POST"]),
            *page_routes(),
        ])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith(JOIN_PREFIX) and path.endswith(JOIN_SUFFIX):
                await self._join(scope, receive, send, path[len(JOIN_PREFIX):-len(JOIN_SUFFIX)])
                return
        await self.starlette(scope, receive, send)

    async def _join(self, scope: Scope, receive: Receive, send: Send, room: str) -> None:
        service = self.service
        client = scope.get("client")
        address = service.client_of(client[0] if client else None, scope["headers"])
        try:
            body = await _read_body(scope, receive, self.max_body)
        except BodyTooLarge:
            service.metrics.count_join(None, None, "too_large")
            answer = error(413, "body_too_large", f"join bodies are at most {self.max_body} bytes")
        else:
            answer = await service.join(room, body, address)
        payload, headers = _encode(answer)
        if answer.status == 413:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        if self.access_log:
            access_log.info("POST join %d from %s", answer.status,
                            truncate_address(address) if address is not None else "unknown")

    async def _join_slow(self, request: Request) -> Response:
        # Only reached when the fast path did not match (never, for POST); kept so the route
        # table documents the API and answers 405 to other methods.
        return JSONResponse({"error": "not_found"}, status_code=404)  # pragma: no cover

    async def _healthz(self, request: Request) -> Response:
        state = self.health()
        return JSONResponse(state, status_code=200 if state["status"] != "starting" else 503,
                            headers={"cache-control": "no-store"})



def operator_app(service: JoinService, targets: Callable[[], list[dict[str, Any]]]
                 ) -> Starlette:
    """The ``--metrics-listen`` listener's app: ``/metrics`` (this front door's metrics, no
    address labels) and ``/v1/prometheus/targets`` (Prometheus HTTP service discovery)."""

    async def metrics(request: Request) -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    async def prometheus_sd(request: Request) -> Response:
        return JSONResponse(targets(), headers={"cache-control": "no-store"})

    return Starlette(routes=[
        Route("/metrics", metrics, methods=["GET"]),
        Route("/v1/prometheus/targets", prometheus_sd, methods=["GET"]),
    ])


def prometheus_targets(service: JoinService, own: str | None) -> list[dict[str, Any]]:
    """Prometheus HTTP service discovery: one group per node that publishes a ``metrics``
    address, plus this front door (``own``, its metrics listener's host:port) if given."""
    groups: list[dict[str, Any]] = []
    snapshot = service.snapshots.get()
    for node_id, record in sorted(snapshot.records.items()):
        target = metrics_target(record.addresses)
        if target is None:
            continue
        groups.append({"targets": [target], "labels": {
            "job": f"regio-{record.kind}", "regio_node": node_id, "regio_kind": record.kind,
            "regio_region": record.region, "regio_jurisdiction": record.jurisdiction,
        }})
    if own is not None:
        groups.append({"targets": [own], "labels": {"job": "regio-frontdoor",
                                                   "regio_kind": "frontdoor"}})
    return groups


def uptime_clock() -> Callable[[], float]:
    started = time.monotonic()
    return lambda: time.monotonic() - started


__all__ = ["FrontdoorApp", "operator_app", "prometheus_targets"]
