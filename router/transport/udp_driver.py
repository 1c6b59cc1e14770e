"""Thin Trio drivers: one non-blocking UDP socket feeding a transport core.

The loop, per ARCHITECTURE.md §6: wait until the socket is readable (or the core's one deadline
passes), then drain it with ``recvfrom_into`` a preallocated buffer until ``BlockingIOError``,
feed every datagram to the core with the same ``now``, run due timers, hand events to the
caller, and send everything queued with plain non-blocking ``sendto``, awaiting writability only
when the kernel pushes back. No Trio checkpoint per packet, no task per peer or per timer.

The socket is a stdlib socket in non-blocking mode; Trio is used only to wait on it, through
``trio.lowlevel.wait_readable``/``wait_writable``. Time is ``trio.current_time()``, so tests can
run the drivers under ``trio.testing.MockClock``.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable
from typing import Final, Protocol

import trio

from router.transport.client import ClientTransport
from router.transport.events import Address, TransportEvent
from router.transport.mux import TransportMux
from router.transport.peer import PeerTransport

_BUFFER_SIZE: Final = 65536
#: Datagrams handled per batch before sending and waiting again, so one flood cannot starve
#: timers and output.
MAX_BATCH: Final = 256


class DatagramCore(Protocol):
    """What a driver needs from a core (both :class:`TransportMux` and the transports)."""

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> object: ...

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


class UdpDriver:
    """Runs one core on one socket. ``after_batch`` drains the core's events (and may queue
    media); it is called after every batch of input and timers, before output is flushed."""

    def __init__(
        self, sock: socket.socket, core: DatagramCore, after_batch: Callable[[], None]
    ) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.core = core
        self.send_errors = 0
        self.datagrams_in = 0
        self.datagrams_out = 0
        self._after_batch = after_batch
        self._buffer = bytearray(_BUFFER_SIZE)
        self._pending: list[tuple[bytes, Address]] = []
        self._wait_scope: trio.CancelScope | None = None

    def notify(self) -> None:
        """Wake the loop after an API call on the core (new output or a new timer)."""
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    async def run(self) -> None:
        """Serve until cancelled."""
        sock, core, buffer = self.sock, self.core, self._buffer
        view = memoryview(buffer)
        while True:
            deadline = core.get_timer()
            with trio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                self._wait_scope = scope
                if self._pending:
                    await trio.lowlevel.wait_writable(sock)
                else:
                    await trio.lowlevel.wait_readable(sock)
            self._wait_scope = None
            now = trio.current_time()
            for _ in range(MAX_BATCH):
                try:
                    n, addr = sock.recvfrom_into(buffer)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    # ICMP errors surface on the next recv (e.g. port unreachable): ignore.
                    continue
                self.datagrams_in += 1
                core.receive_datagram(bytes(view[:n]), addr, now)
            timer = core.get_timer()
            if timer is not None and timer <= now:
                core.handle_timer(now)
            self._after_batch()
            self._pending.extend(core.datagrams_to_send(now))
            self._flush()
            await trio.lowlevel.checkpoint_if_cancelled()

    def _flush(self) -> None:
        """Send what the kernel takes now; keep the rest for when the socket is writable."""
        pending = self._pending
        sendto = self.sock.sendto
        sent = 0
        for data, addr in pending:
            try:
                sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.send_errors += 1
            sent += 1
        self.datagrams_out += sent
        del pending[:sent]


def mux_driver(
    sock: socket.socket,
    mux: TransportMux,
    on_event: Callable[[PeerTransport, TransportEvent], None],
) -> UdpDriver:
    """A driver for the router's port: every ``(peer, event)`` goes to ``on_event``."""

    def drain() -> None:
        while (item := mux.next_event()) is not None:
            on_event(*item)

    return UdpDriver(sock, mux, drain)


def client_driver(
    sock: socket.socket,
    client: ClientTransport,
    on_event: Callable[[TransportEvent], None],
) -> UdpDriver:
    """A driver for one synthetic client (call ``client.connect(now)`` then ``notify()``)."""

    def drain() -> None:
        while (event := client.next_event()) is not None:
            on_event(event)

    return UdpDriver(sock, client, drain)


__all__ = ["DatagramCore", "UdpDriver", "client_driver", "mux_driver"]
