"""The impairment proxy on loopback sockets: clients talk to ``listen``, the proxy talks to
``target`` from one socket per client (so the target sees one address per client, as behind a
NAT), and both directions go through their own :class:`~benchmarks.impair.model.Impairment`.

Sockets are drained in batches without a Trio checkpoint per datagram; delayed datagrams wait
in one heap served by one task. Settings change while it runs through :meth:`update` (tests,
benches in the same process) or the optional control socket: a UDP datagram with a JSON
object ``{"direction": "up"|"down"|"both", "set": {"loss": 5, "rate_kbps": 300, ...}}`` is
applied and answered with the current settings and counters (``{}`` just reads them).

Only loopback addresses are accepted: this is a test instrument, not a relay.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import json
import socket
from dataclasses import asdict
from typing import Any

import trio

from benchmarks.impair.model import Impairment, ImpairmentSettings, SettingsError

__all__ = ["ImpairmentProxy", "ProxyError"]

Address = tuple[str, int]
_BUFFER = 65536


class ProxyError(ValueError):
    """A proxy address that is not a loopback HOST:PORT."""


def _check_loopback(addr: Address, what: str) -> None:
    try:
        ip = ipaddress.ip_address(addr[0])
    except ValueError as exc:
        raise ProxyError(f"{what} {addr[0]!r} is not an IP address") from exc
    if not ip.is_loopback:
        raise ProxyError(f"{what} {addr[0]} is not a loopback address (the proxy is for tests)")


def _udp(host: str, port: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 21)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class ImpairmentProxy:
    """A two-way impaired UDP path between clients and one target (see the module)."""

    def __init__(
        self,
        listen: Address,
        target: Address,
        up: ImpairmentSettings | None = None,
        down: ImpairmentSettings | None = None,
        *,
        seed: int = 0,
        control: Address | None = None,
    ) -> None:
        _check_loopback(listen, "listen address")
        _check_loopback(target, "target address")
        if control is not None:
            _check_loopback(control, "control address")
        up = up or ImpairmentSettings()
        self.up = Impairment(up, seed)
        """Client -> target."""
        self.down = Impairment(down or up, seed + 1)
        """Target -> client."""
        self.target = target
        self._listen = _udp(*listen)
        self.address: Address = self._listen.getsockname()[:2]
        self._control = _udp(*control) if control is not None else None
        self.control_address: Address | None = (
            self._control.getsockname()[:2] if self._control is not None else None
        )
        self._upstream: dict[Address, socket.socket] = {}
        self._heap: list[tuple[float, int, socket.socket, bytes, Address]] = []
        self._order = itertools.count()
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.send_errors = 0

    # -- control --------------------------------------------------------------------------

    def update(self, direction: str = "both", **values: float) -> None:
        """Change settings now (``direction``: up, down or both); raises SettingsError."""
        if direction not in ("up", "down", "both"):
            raise SettingsError(f"direction must be up, down or both, not {direction!r}")
        targets = [self.up, self.down] if direction == "both" else [getattr(self, direction)]
        new = [t.settings.changed(**values) for t in targets]
        for impairment, settings in zip(targets, new, strict=True):
            impairment.update(settings)

    def snapshot(self) -> dict[str, Any]:
        """Current settings and counters of both directions."""
        return {
            name: {"settings": asdict(imp.settings), "stats": asdict(imp.stats)}
            for name, imp in (("up", self.up), ("down", self.down))
        } | {"clients": len(self._upstream)}

    # -- running --------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; sockets are closed on the way out."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._read_clients)
                nursery.start_soon(self._release)
                if self._control is not None:
                    nursery.start_soon(self._serve_control, self._control)
                task_status.started(self.address)
        finally:
            for sock in [self._listen, *self._upstream.values()]:
                sock.close()
            if self._control is not None:
                self._control.close()

    def _schedule(self, impairment: Impairment, out: socket.socket, data: bytes, to: Address,
                  now: float) -> None:  # fmt: skip
        due = impairment.decide(now, len(data))
        if due is None:
            return
        if due <= now and not self._heap:
            self._send(out, data, to)
            return
        heapq.heappush(self._heap, (due, next(self._order), out, data, to))
        self._wake.set()

    def _send(self, sock: socket.socket, data: bytes, to: Address) -> None:
        try:
            sock.sendto(data, to)
        except OSError:
            self.send_errors += 1

    async def _read_clients(self) -> None:
        sock = self._listen
        while True:
            await trio.lowlevel.wait_readable(sock)
            now = trio.current_time()
            while True:
                try:
                    data, addr = sock.recvfrom(_BUFFER)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue
                client: Address = addr[:2]
                upstream = self._upstream.get(client)
                if upstream is None:
                    upstream = _udp(self.address[0])
                    self._upstream[client] = upstream
                    assert self._nursery is not None
                    self._nursery.start_soon(self._read_target, upstream, client)
                self._schedule(self.up, upstream, data, self.target, now)

    async def _read_target(self, sock: socket.socket, client: Address) -> None:
        while True:
            await trio.lowlevel.wait_readable(sock)
            now = trio.current_time()
            while True:
                try:
                    data, _addr = sock.recvfrom(_BUFFER)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue
                self._schedule(self.down, self._listen, data, client, now)

    async def _release(self) -> None:
        heap = self._heap
        while True:
            if not heap:
                await self._wake.wait()
            else:
                with trio.move_on_at(heap[0][0]):
                    await self._wake.wait()
            self._wake = trio.Event()
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _due, _n, sock, data, to = heapq.heappop(heap)
                self._send(sock, data, to)

    async def _serve_control(self, sock: socket.socket) -> None:
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                data, addr = sock.recvfrom(_BUFFER)
            except (BlockingIOError, InterruptedError, OSError):
                continue
            try:
                request = json.loads(data)
                if not isinstance(request, dict):
                    raise SettingsError("a control request is a JSON object")
                values = request.get("set", {})
                if not isinstance(values, dict):
                    raise SettingsError('"set" must be an object of setting: number')
                self.update(str(request.get("direction", "both")), **values)
                reply: dict[str, Any] = {"ok": True, **self.snapshot()}
            except (ValueError, TypeError) as exc:
                reply = {"ok": False, "error": str(exc)}
            self._send(sock, json.dumps(reply).encode(), addr[:2])
