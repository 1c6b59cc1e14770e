"""The TURN node's small HTTP listener: ``/metrics`` for Prometheus and ``/healthz`` for
probes (Kubernetes liveness/readiness, load balancers), in one daemon thread.

A TURN node speaks only STUN on its client ports, so its health has to come from here. The
answer is JSON (``status``, ``draining``, ``allocations``, ``quota``); it stays 200 while
draining on purpose: a draining node still relays for its existing allocations, and a failing
probe would make Kubernetes restart it or cut its traffic. New allocations are steered away
through etcd (the node's draining flag), not through the probe.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from control.strict_http import CrlfLineReader

StartResponse = Callable[..., Any]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would flood stderr; requests are not logged."""

    def parse_request(self) -> bool:
        """Refuse a request head with a bare LF (400), like every listener of ours
        (control/strict_http.py); ``http.server`` alone would take it as a line end."""
        if not self.raw_requestline.endswith(b"\r\n"):  # type: ignore[attr-defined]
            # Refused before reading headers that may never come (parse_request would wait).
            self.command, self.request_version, self.requestline = "", "HTTP/1.0", ""
            self.close_connection = True
            self.send_error(400, "request head lines must end with CRLF")
            return False
        raw = self.rfile
        lines = self.rfile = CrlfLineReader(raw)  # type: ignore[arg-type,assignment]
        try:
            parsed = super().parse_request()
        finally:
            self.rfile = raw
        if parsed and lines.bare_lf:
            self.send_error(400, "request head lines must end with CRLF")
            return False
        return parsed


def status_app(registry: CollectorRegistry, status: Callable[[], dict[str, Any]]
               ) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            body = json.dumps(status()).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Cache-Control", "no-store"),
                                      ("Content-Length", str(len(body)))])
            return [body]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    return app


def start_status_server(host: str, port: int, registry: CollectorRegistry,
                        status: Callable[[], dict[str, Any]]) -> ThreadingWSGIServer:
    """Serve in a daemon thread; ``shutdown()`` the returned server to stop it."""

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    httpd = make_server(host, port, status_app(registry, status), Server,
                        handler_class=_QuietHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True,
                     name="turn-status-http").start()
    return httpd


__all__ = ["start_status_server", "status_app"]
