"""A whole router process: UDP media port, signaling and metrics servers, etcd registration,
placement upkeep and drain.

Wiring, all in one Trio thread so the session core needs no locks:

* one non-blocking UDP socket driven by :class:`~router.transport.udp_driver.UdpDriver` over
  the :class:`~router.transport.TransportMux` (batches, no checkpoint per packet); its
  ``after_batch`` hands events to the core through :class:`~router.signaling.hub.Hub`;
* Hypercorn + Starlette for ``/v1/signal`` (ws, or wss with --tls-cert) and ``/metrics``;
* with etcd: a :class:`~control.view.ClusterView` (join-token keys, topology), a
  :class:`~control.registry.NodeRegistration` (kind ``router``, load = participants), a
  :class:`~control.drain.DrainController` (SIGTERM or ``regio node drain``: no new joins,
  existing sessions and joins into rooms it hosts continue until empty or the deadline; no new
  rooms), the router's room memberships bound when a room opens here (:mod:`router.rooms`),
  removed when it empties and re-bound after a lease was replaced.
"""

from __future__ import annotations

import gc
import json
import math
import random
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from prometheus_client import CollectorRegistry

from control.logs import get_logger
from control.schema import KeySet, NodeAddress, SecretKey
from control.sdnotify import SystemdNotifier, run_watchdog
from control.stopsignals import StopSignals
from control.strict_http import install_strict_hypercorn
from router.config import RouterConfig

if TYPE_CHECKING:
    from router.rooms import RoomPlacements
from router.metrics import metrics_app, registry_for
from router.sdp import host_candidate
from router.session import MediaPlane, RoomNotice, SessionConfig, SessionCore
from router.signaling.app import SIGNAL_PATH, build_app
from router.signaling.hub import Hub
from router.transport import TransportConfig, TransportMux, fastpath, process_certificate
from router.transport.udp_driver import UdpDriver, enlarge_socket_buffers

log = get_logger("router.node")

KeySource = Callable[[], KeySet | Mapping[str, SecretKey] | None]


@dataclass(slots=True)
class RouterAddresses:
    """Where a running router listens (filled in as listeners bind)."""

    udp: tuple[str, int] = ("", 0)
    signaling_url: str = ""
    metrics_url: str = ""
    node_id: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def ready_line(self) -> str:
        return json.dumps({"event": "ready", "node": self.node_id,
                           "udp": f"{self.udp[0]}:{self.udp[1]}",
                           "signaling": self.signaling_url, "metrics": self.metrics_url})


def split_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``; raises ValueError."""
    value = text.strip()
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
    else:
        host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def make_media_plane(loss_aware: bool = True) -> MediaPlane:
    """The forwarder (router.forwarding) behind the session core's media-plane interface."""
    from router.forwarding import Forwarder, ForwarderConfig
    from router.forwarding.link_config import LinkConfig
    from router.session.forwarder_adapter import ForwarderPlane

    config = ForwarderConfig(link=LinkConfig(enabled=loss_aware))
    plane: MediaPlane = ForwarderPlane(Forwarder(config))
    return plane


def session_config(config: RouterConfig) -> SessionConfig:
    return SessionConfig(
        max_message_bytes=config.max_message_bytes, message_rate=config.message_rate,
        message_burst=config.message_burst, join_timeout=config.join_timeout,
        reconnect_grace=config.reconnect_grace,
        max_room_participants=config.max_room_participants,
        max_participants=config.capacity, chat_rate=config.chat_rate,
        chat_burst=config.chat_burst, chat_default=config.chat,
    )  # fmt: skip


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """Server TLS for wss: TLS 1.2 minimum, forward-secret AEAD suites only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    context.set_alpn_protocols(["http/1.1"])
    context.load_cert_chain(cert, key)
    return context


class _TlsHypercornConfig(HypercornConfig):
    tls: ssl.SSLContext | None = None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self.tls


def settle_heap() -> None:
    """Move everything alive once the node serves (modules, classes, the libraries' tables:
    hundreds of thousands of objects) out of the cyclic collector's reach (``gc.freeze``).

    Why: a full collection walks every tracked object, and with the startup heap in it one
    took 60 ms on the media path under ``regio bench sfu`` at 46,000 forwarded packets/s,
    every packet of those 60 ms late (it set the p99.9). Objects made later (sessions,
    tracks) are still collected; only the startup heap, which lives as long as the process,
    is skipped.
    """
    gc.collect()
    gc.freeze()


class RouterNode:
    """One router process's pieces; :meth:`serve` runs them until drained or cancelled."""

    def __init__(self, config: RouterConfig, keys: KeySource, *,
                 media: MediaPlane | None = None, seed: int | None = None) -> None:
        self.config = config
        self.keys = keys
        self.addresses = RouterAddresses()
        self.sock = socket.socket(socket.AF_INET6 if ":" in config.listen else socket.AF_INET,
                                  socket.SOCK_DGRAM)
        self.sock.bind((config.listen, config.udp_port))
        rcv, snd = enlarge_socket_buffers(self.sock, config.udp_buffer)
        log.info("media socket buffers: receive %d bytes, send %d bytes (asked for %d)",
                 rcv, snd, config.udp_buffer)
        self.addresses.extra["socket_buffers"] = {"receive": rcv, "send": snd}
        fastpath.log_choice()  # which per-packet loops run: compiled, or the Python reference
        self.addresses.extra["fast_path"] = fastpath.enabled()
        port = self.sock.getsockname()[1]
        public = config.public_ip or config.listen
        self.addresses.udp = (public, port)
        self.addresses.node_id = config.node_id or f"router-{config.region}-{port}"
        self.mux = TransportMux(TransportConfig(consent_timeout=config.consent_timeout,
                                                connect_timeout=config.connect_timeout))
        self.core = SessionCore(
            node_id=self.addresses.node_id, keys=keys, mux=self.mux,
            media=media or make_media_plane(config.loss_aware), certificate=process_certificate(),
            candidates=(host_candidate(public, port),), config=session_config(config),
            rng=random.Random(seed),
        )  # fmt: skip
        self.notices: trio.MemorySendChannel[RoomNotice]
        self._notice_recv: trio.MemoryReceiveChannel[RoomNotice]
        self.notices, self._notice_recv = trio.open_memory_channel[RoomNotice](math.inf)
        self.hub = Hub(self.core, on_notice=self.notices.send_nowait)
        self.placements: RoomPlacements | None = None
        """Set while the clustered router follows its rooms in etcd (``follow_rooms``)."""
        self.driver = UdpDriver(self.sock, self.mux, lambda: self.hub.drain_transport(self.mux),
                                on_read=self.hub.mark_batch)
        self.hub.notify_transport = self.driver.notify
        #: The /metrics registry once serving (the clustered node adds its registration's).
        self.metrics_registry: CollectorRegistry | None = None

    @property
    def node_id(self) -> str:
        return self.addresses.node_id

    def status(self) -> dict[str, object]:
        return {"node": self.node_id, "draining": self.core.draining,
                "participants": self.core.participant_count, "rooms": len(self.core.rooms)}

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the media driver, the timer task and the HTTP listeners."""
        cfg = self.config
        install_strict_hypercorn()
        nursery.start_soon(self.driver.run)
        nursery.start_soon(self.hub.run_timers)
        sig = cfg.signaling or f"{_bracket(cfg.listen)}:0"
        host, _ = split_host_port(sig)
        hc = _TlsHypercornConfig()
        hc.bind = [sig]
        hc.websocket_max_message_size = 4 * cfg.max_message_bytes
        hc.accesslog = None
        hc.errorlog = None
        scheme = "ws"
        if cfg.tls_cert:
            hc.tls = tls_context(cfg.tls_cert, cfg.tls_key)
            hc.certfile, hc.keyfile = cfg.tls_cert, cfg.tls_key
            scheme = "wss"
        binds = await nursery.start(serve, build_app(self.hub, self.status), hc)
        bound_port = int(binds[0].rsplit(":", 1)[1])
        advertised = cfg.public_ip or host
        self.addresses.signaling_url = f"{scheme}://{_bracket(advertised)}:{bound_port}{SIGNAL_PATH}"
        if cfg.metrics:
            mc = HypercornConfig()
            mc.bind = [cfg.metrics]
            mc.accesslog = None
            mc.errorlog = None
            registry = self.metrics_registry = registry_for(self.hub, cfg.region)
            mbinds = await nursery.start(serve, metrics_app(registry), mc)
            mhost, _ = split_host_port(cfg.metrics)
            self.addresses.metrics_url = (
                f"http://{_bracket(mhost)}:{int(mbinds[0].rsplit(':', 1)[1])}/metrics")

    def node_addresses(self) -> tuple[NodeAddress, ...]:
        """What etcd learns: the UDP port, the signaling listener and the metrics listener."""
        out = [NodeAddress("udp", *self.addresses.udp)]
        url = self.addresses.signaling_url
        scheme, _, rest = url.partition("://")
        host, port = split_host_port(rest.split("/", 1)[0])
        out.append(NodeAddress(scheme, host, port))
        if self.addresses.metrics_url:
            mhost, mport = split_host_port(self.addresses.metrics_url.split("://")[1].split("/")[0])
            out.append(NodeAddress("metrics", mhost, mport))
        return tuple(out)

    def healthy(self) -> bool:
        """The watchdog's check: the media socket is open. (A crashed driver task ends the
        whole process; a stalled loop stops the watchdog task itself.)"""
        return self.sock.fileno() >= 0

    def begin_drain(self) -> None:
        """No new joins from now on; current sessions continue."""
        self.core.draining = True

    async def finish(self, grace: float = 0.5) -> None:
        """Tell everyone goodbye, clean up, and give the close frames a moment to leave."""
        self.core.shutdown(trio.current_time())
        self.hub.flush()
        self.driver.notify()
        await trio.sleep(grace)
        self.sock.close()

    async def run_standalone(self) -> int:
        """Serve without etcd until SIGTERM (drain, then stop) or SIGINT / a second SIGTERM."""
        systemd = SystemdNotifier.from_environment()
        signals = StopSignals()
        async with trio.open_nursery() as nursery:
            await nursery.start(signals.run)
            await self.start(nursery)
            nursery.start_soon(self._discard_notices)
            settle_heap()
            print(self.addresses.ready_line(), flush=True)
            systemd.ready(f"router {self.node_id} serving (standalone)")
            nursery.start_soon(run_watchdog, systemd, self.healthy)
            await signals.drain.wait()
            self.begin_drain()
            systemd.stopping(f"draining: {self.core.participant_count} participants left")
            await signals.until_stopped_or(lambda: not self.core.participant_count,
                                           self.config.drain_deadline)
            await self.finish()
            nursery.cancel_scope.cancel()
        return 0

    async def _discard_notices(self) -> None:
        async for _ in self._notice_recv:
            pass

    async def follow_rooms(self, client: object, lease: Callable[[], int],
                           jurisdiction: str) -> None:
        """Keep etcd's room records and memberships equal to this router's rooms (see
        router.rooms): membership bound to the current ``lease()`` when a room opens here,
        removed when it empties, room records kept alive meanwhile."""
        from control.etcd import EtcdClient
        from router.rooms import RoomPlacements

        assert isinstance(client, EtcdClient)
        self.placements = RoomPlacements(client, self.node_id, self.config.region, jurisdiction,
                                         lease, self.hub.evict_room, self.core.stats)
        await self.placements.follow(self._notice_recv)


__all__ = ["RouterAddresses", "RouterNode", "settle_heap", "split_host_port", "tls_context"]
