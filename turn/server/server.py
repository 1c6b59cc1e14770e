"""The Trio side of a TURN node: sockets, the one timer, output dispatch, events.

:class:`TurnServer` binds every listener and the relay pool, builds the core with a peer policy
that knows those endpoints, and runs the loops of :mod:`turn.server.udp_driver` and
:mod:`turn.server.stream_driver`. After any input that reached the core's general path it calls
:meth:`TurnServer.flush`, which sends what the core queued, handles its events and re-arms the
single deadline (``core.get_timer()``); the timer task sleeps on exactly that deadline.
"""

from __future__ import annotations

import math
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio

from control.logs import get_logger, truncate_address
from turn.server.allocation import Addr, FiveTuple
from turn.server.config import TurnConfig
from turn.server.core import ToClient, ToPeer, TurnServerCore
from turn.server.events import (
    AllocationCreated,
    AllocationDeleted,
    AuthFailed,
    CloseConnection,
    PeerDenied,
    TurnEvent,
)
from turn.server.peer_policy import PeerPolicy, parse_endpoint
from turn.server.relay import UdpRelay, UdpRelayPool
from turn.server.stream_connection import StreamConnection
from turn.server.stream_driver import serve_connection
from turn.server.udp_driver import client_listener_loop, relay_loop

log = get_logger("turn.server")

DEFAULT_PORT = 3478


def parse_port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ValueError(f"relay port range {text!r}: expected LOW-HIGH")
    return int(low), int(high)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """Server context: TLS 1.2 or newer only (ARCHITECTURE.md §7)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def _udp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


@dataclass
class BoundAddresses:
    """Where the node really listens (ports resolved when 0 was asked for)."""

    udp: list[Addr] = field(default_factory=list)
    tcp: list[Addr] = field(default_factory=list)
    tls: list[Addr] = field(default_factory=list)
    metrics: Addr | None = None


class TurnServer:
    """One TURN node process's data plane."""

    def __init__(
        self,
        config: TurnConfig,
        *,
        secrets: Callable[[], Sequence[str]] | None = None,
        extra_denied: Sequence[Addr] = (),
        on_event: Callable[[TurnEvent], None] | None = None,
    ) -> None:
        self.config = config
        self._secrets = secrets
        self._extra_denied = list(extra_denied)
        self._on_event = on_event
        self.addresses = BoundAddresses()
        self.udp_sockets: dict[Addr, socket.socket] = {}
        self.connections: dict[FiveTuple, StreamConnection] = {}
        self.core: TurnServerCore
        self.pool: UdpRelayPool
        self._timer_scope = trio.CancelScope()
        self.ready = trio.Event()

    # -- setup ------------------------------------------------------------------------------

    def _bind(self) -> tuple[list[socket.socket], list[trio.SocketListener],
                             list[trio.SocketListener]]:
        cfg = self.config
        udp = [_udp_socket(*parse_endpoint(e, DEFAULT_PORT))
               for e in (cfg.listen or [f"127.0.0.1:{DEFAULT_PORT}"])]
        for sock in udp:
            addr = sock.getsockname()[:2]
            self.udp_sockets[addr] = sock
            self.addresses.udp.append(addr)
        return udp, [], []

    async def _open_stream_listeners(self, specs: list[str]) -> list[trio.SocketListener]:
        out: list[trio.SocketListener] = []
        for spec in specs:
            host, port = parse_endpoint(spec, DEFAULT_PORT)
            out.extend(await trio.open_tcp_listeners(port, host=host))
        return out

    def _build_core(self) -> None:
        cfg = self.config
        first_host = self.addresses.udp[0][0] if self.addresses.udp else "127.0.0.1"
        relay_ip = cfg.relay_ip or ("127.0.0.1" if first_host in ("0.0.0.0", "::") else first_host)
        if ":" in relay_ip:
            relay_ip = "127.0.0.1"
        self.pool = UdpRelayPool(
            relay_ip,
            parse_port_range(cfg.relay_ports),
            ip6=cfg.relay_ip6,
            external_ip4=cfg.external_ip,
        )
        own: list[Addr] = [*self.addresses.udp, *self.addresses.tcp, *self.addresses.tls]
        if self.addresses.metrics is not None:
            own.append(self.addresses.metrics)
        own.extend(self._extra_denied)
        for spec in cfg.etcd_endpoints:
            host, port = parse_endpoint(spec, 2379)
            for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
                own.append((str(info[4][0]), port))
        relay_ips = [relay_ip, *([cfg.relay_ip6] if cfg.relay_ip6 else []),
                     *([cfg.external_ip] if cfg.external_ip else [])]
        policy = PeerPolicy(
            allow=cfg.allow_peer,
            own_endpoints=own,
            relay_ips=relay_ips,
            relay_ports=self.pool.range,
        )
        self.core = TurnServerCore(
            cfg, self.pool, secrets=self._secrets, policy=policy,
            wall_offset=time.time() - trio.current_time(),
        )

    def add_denied_endpoint(self, host: str, port: int) -> None:
        """Deny one more endpoint of this node (e.g. the metrics listener bound later)."""
        self.core.policy.add_own_endpoint(host, port)

    async def run(self, *, task_status: trio.TaskStatus[TurnServer] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Bind, serve until cancelled; ``task_status.started(self)`` once listening."""
        cfg = self.config
        udp, _, _ = self._bind()
        tcp = await self._open_stream_listeners(cfg.tcp_listen)
        tls_raw = await self._open_stream_listeners(cfg.tls_listen)
        self.addresses.tcp = [lst.socket.getsockname()[:2] for lst in tcp]
        self.addresses.tls = [lst.socket.getsockname()[:2] for lst in tls_raw]
        tls: list[trio.SSLListener[trio.SocketStream]] = []
        if tls_raw:
            context = tls_context(cfg.tls_cert, cfg.tls_key)
            tls = [trio.SSLListener(lst, context, https_compatible=False) for lst in tls_raw]
        self._build_core()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._timer_loop)
                nursery.start_soon(relay_loop, self, self.pool)
                for sock in udp:
                    nursery.start_soon(client_listener_loop, self, sock)
                if tcp:
                    nursery.start_soon(self._serve_streams, tcp, "tcp")
                if tls:
                    nursery.start_soon(self._serve_streams, tls, "tls")
                self.ready.set()
                task_status.started(self)
        finally:
            for sock in udp:
                sock.close()
            self.pool.close_all()

    async def _serve_streams(self, listeners: Sequence[trio.abc.Listener[trio.abc.Stream]],
                             protocol: str) -> None:
        async def handler(stream: trio.abc.Stream) -> None:
            await serve_connection(self, stream, protocol)

        await trio.serve_listeners(handler, list(listeners))

    def receive(self, data: bytes, ft: FiveTuple, now: float) -> None:
        """Hand a client frame to the core; a bug in one request must not take the node down."""
        try:
            self.core.receive_datagram(data, ft, now)
        except Exception:
            self.core.stats.dropped["internal_error"] += 1
            log.exception("internal error handling a %s request", ft.protocol)

    # -- output -----------------------------------------------------------------------------

    def client_write(self, ft: FiveTuple, data: bytes) -> None:
        """Send to a client without waiting (UDP: drop on a full socket buffer)."""
        if ft.protocol == "udp":
            sock = self.udp_sockets.get(ft.server)
            if sock is None:
                return
            try:
                sock.sendto(data, ft.client)
            except OSError:
                self.core.stats.dropped["send_error"] += 1
        else:
            self.stream_write(ft, data)

    def stream_write(self, ft: FiveTuple, data: bytes) -> None:
        conn = self.connections.get(ft)
        if conn is None or not conn.write(data):
            self.core.stats.dropped["stream_backlog"] += 1

    def peer_write(self, relay: object, data: bytes, peer: Addr) -> None:
        assert isinstance(relay, UdpRelay)
        try:
            relay.sock.sendto(data, peer)
        except OSError:
            self.core.stats.dropped["send_error"] += 1

    async def flush(self) -> None:
        """Send the core's output, handle its events, re-arm the timer."""
        core = self.core
        now = trio.current_time()
        for item in core.datagrams_to_send(now):
            if type(item) is ToClient:
                self.client_write(item.five_tuple, item.data)
            elif type(item) is ToPeer:
                self.peer_write(item.relay, item.data, item.peer)
        while (event := core.next_event()) is not None:
            self._handle_event(event)
        deadline = core.get_timer()
        self._timer_scope.deadline = math.inf if deadline is None else deadline

    def _handle_event(self, event: TurnEvent) -> None:
        match event:
            case AllocationCreated(five_tuple=ft, lifetime=lifetime, families=families):
                log.debug("allocation for %s over %s, %d s, IPv%s",
                          truncate_address(ft.client[0]), ft.protocol, lifetime, families)
            case AllocationDeleted(five_tuple=ft, reason=reason):
                log.debug("allocation of %s deleted (%s)", truncate_address(ft.client[0]), reason)
            case AuthFailed(five_tuple=ft, reason=reason):
                log.debug("authentication from %s failed: %s",
                          truncate_address(ft.client[0]), reason)
            case PeerDenied(method=method, reason=reason):
                log.debug("%s to a %s peer denied", method, reason)
            case CloseConnection(five_tuple=ft):
                conn = self.connections.get(ft)
                if conn is not None:
                    conn.scope.cancel()
        if self._on_event is not None:
            self._on_event(event)

    async def _timer_loop(self) -> None:
        while True:
            deadline = self.core.get_timer()
            with trio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                self._timer_scope = scope
                await trio.sleep_forever()
            now = trio.current_time()
            self.core.handle_timer(now)
            await self.flush()

    # -- lifecycle --------------------------------------------------------------------------

    def healthy(self) -> bool:
        """The systemd watchdog's check: every client-facing UDP socket is still open."""
        return all(sock.fileno() >= 0 for sock in self.udp_sockets.values())

    def drain(self) -> None:
        """Refuse new allocations; existing ones live on."""
        self.core.set_draining()


__all__ = ["BoundAddresses", "TurnServer", "parse_port_range", "tls_context"]
