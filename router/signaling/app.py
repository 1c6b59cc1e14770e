"""The signaling endpoint: a thin Starlette WebSocket app over :class:`~router.signaling.hub.Hub`.

``GET /v1/signal`` (WebSocket; the path the front door puts in ``signaling_url``) carries the
JSON messages of docs/signaling.md; ``GET /healthz`` answers a small JSON status. The app only
moves text between the socket and the hub: every decision is the session core's.
"""

from __future__ import annotations

from collections.abc import Callable

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from router.signaling.hub import CloseRequest, Hub, Outgoing

SIGNAL_PATH = "/v1/signal"


async def _sender(ws: WebSocket, outgoing: trio.MemoryReceiveChannel[Outgoing],
                  done: trio.CancelScope) -> None:
    try:
        async for item in outgoing:
            if isinstance(item, CloseRequest):
                await ws.close(item.code, item.reason)
                break
            await ws.send_text(item)
        else:
            # The hub dropped us (slow consumer): close as "try again later".
            await ws.close(1013, "slow consumer")
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        done.cancel()


def build_app(hub: Hub, status: Callable[[], dict[str, object]]) -> Starlette:
    """The ASGI app for one router process."""

    async def signal(ws: WebSocket) -> None:
        await ws.accept()
        conn_id, outgoing = hub.connect()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_sender, ws, outgoing, nursery.cancel_scope)
                while True:
                    message = await ws.receive()
                    if message["type"] == "websocket.disconnect":
                        break
                    text = message.get("text")
                    hub.message(conn_id, text if text is not None else message.get("bytes", b""))
                nursery.cancel_scope.cancel()
        finally:
            hub.disconnect(conn_id)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse(status())

    return Starlette(routes=[
        WebSocketRoute(SIGNAL_PATH, signal),
        Route("/healthz", healthz),
    ])


__all__ = ["SIGNAL_PATH", "build_app"]
