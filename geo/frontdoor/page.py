"""The meeting page: ``GET /r/{room}`` and its static files under ``/static/``.

The page is plain HTML and JavaScript modules from ``geo/frontdoor/static/`` (no build step,
nothing fetched from outside the cluster). ``/r/{room}`` answers the same document for every
valid room name; the script reads the room from its own URL and joins through
``POST /v1/rooms/{room}/join``. Invalid room names get a 400 page, as the join API would.

A strict Content-Security-Policy keeps the page to its own origin: scripts, styles and images
only from here, WebSocket signaling to the routers the join answer names (any ``ws:``/``wss:``
host, since routers live on other ports and hosts), camera and microphone only for this origin.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from geo.frontdoor.service import ROOM_RE

STATIC_DIR = Path(__file__).with_name("static")
PAGE = STATIC_DIR / "meeting.html"

CSP = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "media-src 'self' blob: mediastream:",
    "connect-src 'self' ws: wss:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
))

PAGE_HEADERS = {
    "content-security-policy": CSP,
    "cache-control": "no-cache",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "permissions-policy": "camera=(self), microphone=(self), geolocation=()",
}


class _StaticFiles(StaticFiles):
    """Static files with the page's security headers (and revalidation, not stale code)."""

    def file_response(self, *args: object, **kwargs: object) -> Response:
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers["cache-control"] = "no-cache"
        response.headers["x-content-type-options"] = "nosniff"
        return response


async def room_page(request: Request) -> Response:
    room = request.path_params["room"]
    if not ROOM_RE.fullmatch(room):
        return HTMLResponse(
            "<!doctype html><title>Bad room name</title><p>Room names are 1-64 characters "
            "of A-Z, a-z, 0-9, '_' and '-'.</p>", status_code=400, headers=PAGE_HEADERS)
    return FileResponse(PAGE, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


def page_routes() -> list[BaseRoute]:
    """The routes the front door adds for the meeting page."""
    return [
        Route("/r/{room}", room_page, methods=["GET", "HEAD"]),
        Mount("/static", app=_StaticFiles(directory=STATIC_DIR), name="static"),
    ]


__all__ = ["CSP", "STATIC_DIR", "page_routes", "room_page"]
