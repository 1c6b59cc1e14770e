"""Thin Trio drivers: one non-blocking UDP socket feeding a transport core.

The loop, per ARCHITECTURE.md §6: wait until the socket is readable (or the core's one deadline
passes), then drain it with ``recvfrom`` until ``BlockingIOError`` (measured here: no slower than
``recvfrom_into`` a preallocated buffer plus the ``bytes`` copy the cores need),
feed every datagram to the core with the same ``now``, run due timers, hand events to the
caller, and send everything queued with plain non-blocking ``sendto``, awaiting writability only
when the kernel pushes back. No Trio checkpoint per packet, no task per peer or per timer.

The socket is a stdlib socket in non-blocking mode; Trio is used only to wait on it, through
``trio.lowlevel.wait_readable``/``wait_writable`` (on the fast path, while Trio has nothing
else to do, a plain ``poll`` past its scheduler: router/transport/direct_wait.py). Time is
``trio.current_time()``, so tests can run the drivers under ``trio.testing.MockClock``.
"""

from __future__ import annotations

import contextlib
import math
import socket
from collections.abc import Callable
from typing import Final, Protocol

import trio

from router.transport import fastpath
from router.transport.client import ClientTransport
from router.transport.direct_wait import DirectWait, direct_wait
from router.transport.events import Address, TransportEvent
from router.transport.mux import TransportMux
from router.transport.peer import PeerTransport

_BUFFER_SIZE: Final = 65536
#: Datagrams handled per batch before sending and waiting again, so one flood cannot starve
#: timers and output. Copies go out only at the end of a batch, so a batch's processing time
#: is latency for all of it: 16 datagrams fan out to ~130 copies (~1.5 ms of work at 40,000
#: forwarded packets/s). 256 held output back ~30 ms when the router fell behind; against 64,
#: 16 took the p99 to the subscriber's socket at ~39,000 pps from 4.6-7.6 to 3.3-4.6 ms
#: (`regio bench sfu`, quiet windows) at no CPU cost the bench could see: with the direct
#: wait, the next batch costs one ``poll``.
MAX_BATCH: Final = 16
#: Batches run back to back before the loop waits on Trio again, while each finds input (the
#: socket is read once more right after a batch is sent; an empty read ends the run). A batch
#: takes long enough (~170 µs under the meeting load) that the next packets of a video frame
#: have usually arrived meanwhile, and a Trio wakeup costs ~50 µs here (an ``epoll`` round
#: trip, the task switch and its bookkeeping) where the extra read costs ~2. Bounded so the
#: signaling and timer tasks still run at least every few milliseconds under a flood. Only when
#: the loop waits through Trio: the direct wait's ``poll`` finds waiting input at no such cost.
DRAIN_ROUNDS: Final = 4


class DatagramCore(Protocol):
    """What a driver needs from a core (both :class:`TransportMux` and the transports)."""

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> object: ...

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


class UdpDriver:
    """Runs one core on one socket. ``after_batch`` drains the core's events (and may queue
    media); it is called after every batch of input and timers, before output is flushed.

    If the core has an ``outbox`` attribute (one list it appends ``(datagram, address)`` to and
    never replaces, like :attr:`TransportMux.outbox`), the driver sends from that list in place
    and deletes what the kernel took; otherwise it moves ``datagrams_to_send`` into its own list.
    """

    def __init__(
        self,
        sock: socket.socket,
        core: DatagramCore,
        after_batch: Callable[[], None],
        *,
        fast: bool | None = None,
        direct: bool = True,
        on_read: Callable[[], None] | None = None,
    ) -> None:
        """``fast`` forces (True) or avoids (False) the compiled ``recvmmsg``/``sendmmsg`` loops
        (router.transport.fastpath); default: when built and not switched off. ``direct``:
        wait past Trio's scheduler when it has nothing else to do (router/transport/
        direct_wait.py; on the fast path only). ``on_read`` is called once per batch, when its
        first datagrams have been read and before the core sees them (the router's
        forwarding-latency histogram starts there)."""
        sock.setblocking(False)
        self.sock = sock
        self.core = core
        self.fast = fastpath.enabled() if fast is None else fast
        # The compiled loops themselves (fails now, not mid-batch, if the helper is missing),
        # called without fastpath's wrappers: a frame less per batch.
        compiled = fastpath.compiled() if self.fast else None
        self._recv_batch: Callable[[int, int, list[tuple[bytes, Address]]], tuple[int, int, int]]
        self._send_batch: Callable[[int, int, list[tuple[bytes, Address]]], tuple[int, int, int]]
        self._recv_batch = compiled.recv_batch if compiled else fastpath.recv_batch
        self._send_batch = compiled.send_batch if compiled else fastpath.send_batch
        # A mux's media table: its peers' SRTP goes through the compiled ingest loop (one C
        # call per batch: lookup, srtp_unprotect, rtp_handler), everything else through
        # receive_datagram; the same result as receive_datagram for each datagram.
        table = getattr(core, "media_table", None)
        self._ingest: Callable[..., None] | None = None
        self._media_table: dict[Address, object] | None = None
        if compiled is not None and isinstance(table, dict):
            self._ingest = compiled.ingest
            self._media_table = table
        self._fd = sock.fileno()
        self._family = int(sock.family)
        self.send_errors = 0
        #: Datagrams over the fast path's 9,216-byte slot, dropped (media is ~1,500 at most).
        self.truncated = 0
        self.datagrams_in = 0
        self.datagrams_out = 0
        #: Times the loop waited on the socket, and times it entered a new cancel scope (only
        #: after a timer or :meth:`notify`; tests check the scope is not rebuilt per wakeup).
        self.waits = 0
        self.scopes = 0
        #: Batches run right after another one without waiting on Trio (see DRAIN_ROUNDS).
        self.extra_rounds = 0
        self._after_batch = after_batch
        self._on_read = on_read
        shared = getattr(core, "outbox", None)
        self._shared = isinstance(shared, list)
        self._pending: list[tuple[bytes, Address]] = shared if isinstance(shared, list) else []
        self._wait_scope: trio.CancelScope | None = None
        #: The wait that skips Trio's scheduler while it has nothing else to do (fast path
        #: only; router/transport/direct_wait.py), made when :meth:`run` starts.
        self.direct: DirectWait | None = None
        self._use_direct = direct

    def notify(self) -> None:
        """Wake the loop after an API call on the core (new output or a new timer)."""
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    async def run(self) -> None:
        """Serve until cancelled.

        One cancel scope lives across many wakeups: its deadline is moved only when the core's
        timer changed, and a new scope is entered only after
        the old one fired (timer due, or :meth:`notify`). Between waits there is no checkpoint:
        ``wait_readable``/``wait_writable`` are the loop's only ones. After a batch the socket
        is read once more, and up to :data:`DRAIN_ROUNDS` batches run per wakeup while each
        finds input. On the fast path the loop waits with a plain ``poll`` instead while Trio
        has nothing else to do (router/transport/direct_wait.py): no checkpoint then (but at
        least one every :data:`~router.transport.direct_wait.DIRECT_SPAN`), and no extra read
        after a batch, since that ``poll`` returns at once when input is waiting.
        """
        sock, core = self.sock, self.core
        self.direct = direct_wait(self._fd) if self.fast and self._use_direct else None
        installed = self.direct
        try:
            while True:
                self.scopes += 1
                with trio.CancelScope() as scope:
                    self._wait_scope = scope
                    while True:
                        deadline = core.get_timer()
                        if deadline is None:
                            deadline = math.inf
                        if deadline != scope.deadline:
                            # Trio's setter runs a context manager even for an unchanged
                            # value: ~5 % of the router's CPU under the meeting load when set
                            # per wakeup.
                            scope.deadline = deadline
                        self.waits += 1
                        direct = self.direct
                        # direct.ready() blocks in poll() while Trio has nothing else to do
                        # and says whether the socket alone is ready (the scope's deadline is
                        # one of Trio's: a due one sends the loop through Trio too).
                        if self._pending or direct is None or not direct.ready():
                            if self._pending:
                                await trio.lowlevel.wait_writable(sock)
                            else:
                                await trio.lowlevel.wait_readable(sock)
                            if direct is not None:
                                direct.scheduled()
                        self._batch()
                        if direct is not None:
                            # The next ready() sees input that came during the batch without
                            # sleeping: an extra read here would only cost (~4 % of the
                            # router's CPU under the meeting load).
                            continue
                        rounds = 1
                        while (rounds < DRAIN_ROUNDS and not self._pending
                               and self._batch(again=True)):
                            rounds += 1
                        self.extra_rounds += rounds - 1
                self._wait_scope = None
                self._batch()
        finally:
            if installed is not None:
                # KeyError: Trio dropped it already (an instrument that raised is removed).
                with contextlib.suppress(KeyError):
                    trio.lowlevel.remove_instrument(installed)

    def _batch(self, *, again: bool = False) -> int:
        """Read up to :data:`MAX_BATCH` datagrams, run due timers, hand events on, send;
        returns how many datagrams were read. ``again``: a read right after a batch, which
        ends there (no timers, no events, no flush) when it finds nothing."""
        core = self.core
        now = trio.current_time()
        count = self._receive_fast(now) if self.fast else self._receive(now)
        if again and not count:
            return 0
        self.datagrams_in += count
        timer = core.get_timer()
        if timer is not None and timer <= now:
            core.handle_timer(now)
        self._after_batch()
        if not self._shared:
            self._pending.extend(core.datagrams_to_send(now))
        if self._pending:
            self._flush()
        return count

    def _receive(self, now: float) -> int:
        """Read up to :data:`MAX_BATCH` datagrams with ``recvfrom`` and hand each to the core
        (the reference loop)."""
        recvfrom = self.sock.recvfrom
        receive = self.core.receive_datagram
        count = 0
        for _ in range(MAX_BATCH):
            try:
                data, addr = recvfrom(_BUFFER_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                # ICMP errors surface on the next recv (e.g. port unreachable): ignore.
                continue
            if not count and self._on_read is not None:
                self._on_read()
            count += 1
            receive(data, addr, now)
        return count

    def _receive_fast(self, now: float) -> int:
        """The read loop through ``recvmmsg``: the same datagrams, in the same order (through
        the compiled ingest loop when the core is a mux)."""
        receive = self.core.receive_datagram
        ingest, table = self._ingest, self._media_table
        count = 0
        attempts = 0
        while count < MAX_BATCH and attempts < MAX_BATCH:
            attempts += 1
            batch: list[tuple[bytes, Address]] = []
            got, truncated, error = self._recv_batch(self._fd, MAX_BATCH - count, batch)
            self.truncated += truncated
            if got and not count and self._on_read is not None:
                self._on_read()
            if ingest is not None:
                ingest(batch, table, receive, now)
            else:
                for data, addr in batch:
                    receive(data, addr, now)
            count += got
            if not error:
                break
            # An ICMP error surfaced on this read (as with recvfrom): skip it and read on.
        return count

    def _flush(self) -> None:
        """Send what the kernel takes now; keep the rest for when the socket is writable."""
        if self.fast:
            self._flush_fast()
            return
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

    def _flush_fast(self) -> None:
        """:meth:`_flush` through ``sendmmsg``; a datagram whose address only ``sendto`` takes
        (a host name, an IPv6 scope) goes through ``sendto``, in order."""
        pending = self._pending
        while pending:
            consumed, errors, stopped = self._send_batch(self._fd, self._family, pending)
            self.send_errors += errors
            self.datagrams_out += consumed
            del pending[:consumed]
            if stopped != 2:
                return  # all sent, or the socket is full: wait until it is writable
            data, addr = pending[0]  # an address only sendto takes
            try:
                self.sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.send_errors += 1
            self.datagrams_out += 1
            del pending[0]


#: What the router asks for on its media socket (Linux grants twice this). The kernel charges a
#: small datagram about 1-2 KiB of buffer (``skb`` truesize), so the 208 KiB default overflows
#: after ~150 datagrams: a few milliseconds of a scheduling stall at 40,000 packets/s. 2 MiB
#: effective holds roughly 50 ms at that rate. Not more: measured with ``regio bench sfu`` on a
#: core starved by other processes, 4 MiB effective raised p50 latency from ~30 ms to 240-390 ms
#: and 16 MiB to 1.2-1.4 s, without reducing loss there (queued media is late media).
SOCKET_BUFFER_BYTES: Final = 1024 * 1024

#: Linux's privileged variants (CAP_NET_ADMIN) exceed ``net.core.rmem_max``/``wmem_max``; the
#: stdlib has no names for them (SO_RCVBUFFORCE = 33, SO_SNDBUFFORCE = 32 in asm-generic).
_FORCE: Final = {socket.SO_RCVBUF: 33, socket.SO_SNDBUF: 32}


def enlarge_socket_buffers(sock: socket.socket, size: int = SOCKET_BUFFER_BYTES) -> tuple[int, int]:
    """Ask for ``size``-byte receive and send buffers; returns the effective ``(rcv, snd)``.

    Tries ``SO_RCVBUFFORCE``/``SO_SNDBUFFORCE`` (root or CAP_NET_ADMIN; not capped by the
    sysctl maximum), then the plain option, which Linux silently caps at ``rmem_max``/
    ``wmem_max``. Linux reports twice the requested value (it reserves bookkeeping space).
    """
    for option, force in _FORCE.items():
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        except OSError:
            with contextlib.suppress(OSError):  # else keep the default; the caller logs it
                sock.setsockopt(socket.SOL_SOCKET, option, size)
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
    )


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


__all__ = [
    "DRAIN_ROUNDS",
    "MAX_BATCH",
    "SOCKET_BUFFER_BYTES",
    "DatagramCore",
    "UdpDriver",
    "client_driver",
    "enlarge_socket_buffers",
    "mux_driver",
]
