"""Janus's HTTP API as the VideoRoom demo uses it, blocking (the worker calls it from a thread).

Requests are ``POST /janus[/session[/handle]]`` with a transaction id; plugin answers are
asynchronous: a request is acknowledged and its result (and any JSEP) arrives as an event on the
long poll ``GET /janus/SESSION?maxev=N``. :meth:`JanusSession.request` sends one plugin message
and waits for the event that answers it, keeping unrelated events for later callers.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import urllib.error
import urllib.request
from typing import Any


class JanusError(RuntimeError):
    """Janus refused a request or did not answer in time."""


def _call(url: str, body: dict[str, Any] | None = None, timeout: float = 35.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
        raise JanusError(f"janus HTTP API at {url}: {exc}") from None


class JanusSession:
    """One Janus session and its plugin handles."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        answer = _call(base_url, {"janus": "create", "transaction": secrets.token_hex(6)})
        if answer.get("janus") != "success":
            raise JanusError(f"janus refused to create a session: {answer}")
        self.id = int(answer["data"]["id"])
        self.url = f"{base_url}/{self.id}"
        self._events: list[dict[str, Any]] = []

    def attach(self, plugin: str = "janus.plugin.videoroom") -> int:
        answer = _call(self.url, {"janus": "attach", "plugin": plugin,
                                  "transaction": secrets.token_hex(6)})
        if answer.get("janus") != "success":
            raise JanusError(f"janus refused to attach {plugin}: {answer}")
        return int(answer["data"]["id"])

    def request(self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None,
                *, timeout: float = 20.0) -> dict[str, Any]:
        """Send a plugin message; return its answer (synchronous ``success`` or the event that
        carries the same transaction). Raises JanusError on an error answer."""
        transaction = secrets.token_hex(6)
        message: dict[str, Any] = {"janus": "message", "body": body, "transaction": transaction}
        if jsep is not None:
            message["jsep"] = jsep
        answer = _call(f"{self.url}/{handle}", message)
        kind = answer.get("janus")
        if kind == "success":
            self._check(answer.get("plugindata", {}).get("data", {}), body)
            return dict(answer)
        if kind != "ack":
            raise JanusError(f"janus answered {body.get('request')!r} with {answer}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self._events:
                if event.get("transaction") == transaction:
                    self._events.remove(event)
                    self._check(event.get("plugindata", {}).get("data", {}), body)
                    return event
            self._poll()
        raise JanusError(f"janus did not answer {body.get('request')!r} within {timeout:g} s")

    def wait_for(self, handle: int, kind: str, *, timeout: float = 20.0) -> dict[str, Any]:
        """Wait for Janus's own event ``kind`` (``webrtcup``, ``media``...) about ``handle``.

        A publisher's feed becomes subscribable only once Janus has seen its DTLS handshake end
        (``webrtcup``), which may come after our side of the handshake has finished: joining a
        subscriber before it is answered ``428 No such feed``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self._events:
                if event.get("janus") == kind and event.get("sender") == handle:
                    self._events.remove(event)
                    return event
            self._poll()
        raise JanusError(f"janus sent no {kind!r} for handle {handle} within {timeout:g} s")

    def _poll(self) -> None:
        answer = _call(f"{self.url}?maxev=10&rid={secrets.token_hex(4)}", timeout=35.0)
        events = answer if isinstance(answer, list) else [answer]
        self._events += [e for e in events if e.get("janus") != "keepalive"]

    @staticmethod
    def _check(data: dict[str, Any], body: dict[str, Any]) -> None:
        if "error" in data:
            raise JanusError(f"janus videoroom refused {body.get('request')!r}: "
                             f"{data.get('error_code')} {data['error']}")

    def destroy(self) -> None:
        with contextlib.suppress(JanusError):
            _call(self.url, {"janus": "destroy", "transaction": secrets.token_hex(6)}, 5.0)


__all__ = ["JanusError", "JanusSession"]
