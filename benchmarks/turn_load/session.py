"""One worker's clients and sockets: set up K pairs of allocations, keep them, tear them down.

Every client owns one non-blocking UDP socket connected to the server (one 5-tuple per
allocation, as RFC 8656 requires), so ``send``/``recv_into`` need no address handling in the hot
loop. Setup and teardown run a small epoll loop around the sans-IO :class:`TurnClient`; the hot
loop (:mod:`benchmarks.turn_load.pump`) reuses :meth:`Session.feed` and :meth:`Session.service`
for the few STUN messages (refreshes) that arrive while ChannelData flows.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from dataclasses import asdict, dataclass

from benchmarks.turn_load.client import (
    Address,
    Allocated,
    ClientConfig,
    Closed,
    Failed,
    PeerReady,
    State,
    TurnClient,
)
from benchmarks.turn_load.credentials import rest_password, rest_username

#: The one channel each client binds (each client has exactly one peer: its partner).
CHANNEL = 0x4000
#: Socket buffers: at 40k pps a 20 ms stall must not overflow the kernel queue.
SOCKET_BUFFER = 4 * 1024 * 1024


class LoadError(Exception):
    """A benchmark that cannot run (unreachable server, refused credentials): one clear line."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """What one worker (in-process or a subprocess) needs; JSON-serialisable for the latter."""

    #: Resolved server address (numeric host, port).
    host: str
    port: int
    #: TURN REST shared secret.
    secret: str
    #: Realm override; None uses the server's.
    realm: str | None
    #: Region for Regio's ``<expiry>:<region>:<participant>`` usernames; None for coturn's form.
    region: str | None
    #: Client pairs this worker owns.
    pairs: int
    #: This worker's share of the packet rate (packets per second, all its clients together).
    pps: float
    #: Length of the send window in seconds.
    seconds: float
    #: ChannelData payload bytes per packet (sequence number and timestamp included).
    size: int
    #: Index of this worker, used in participant names so usernames never collide.
    index: int = 0
    #: Seconds to wait for setup (allocations, permissions, channels) before giving up.
    setup_timeout: float = 10.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        return cls(**json.loads(text))


def describe_failure(event: Failed, target: str) -> str:
    if event.code == 401:
        return (
            f"the TURN server at {target} refused the credentials: {event.describe()} "
            "(check --secret, --realm and --region)"
        )
    if event.code is None:
        return f"no answer from the TURN server at {target}: {event.describe()}"
    return f"the TURN server at {target} refused the load: {event.describe()}"


class Session:
    """2 x ``pairs`` clients; client ``i`` is partnered with client ``i ^ 1``."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.target = f"{config.host}:{config.port}"
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        expiry = int(time.time() + config.seconds + 3600)
        self.clients: list[TurnClient] = []
        self.sockets: list[socket.socket] = []
        self.relayed: list[Address | None] = []
        self.ready: list[bool] = []
        self.closed: list[bool] = []
        self.control_failures: list[str] = []
        self.epoll = select.epoll()
        self.by_fd: dict[int, int] = {}
        for i in range(2 * config.pairs):
            user = f"bench-w{config.index}-c{i}"
            username = rest_username(expiry, user, config.region)
            client_config = ClientConfig(
                username, rest_password(config.secret, username), realm=config.realm
            )
            self.clients.append(TurnClient(client_config))
            sock = socket.socket(family, socket.SOCK_DGRAM)
            for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
            sock.connect((config.host, config.port))
            sock.setblocking(False)
            self.sockets.append(sock)
            self.by_fd[sock.fileno()] = i
            self.epoll.register(sock.fileno(), select.EPOLLIN)
            self.relayed.append(None)
            self.ready.append(False)
            self.closed.append(False)
        self.next_timer = float("inf")
        self.recv_buffer = bytearray(65536)

    # -- shared with the hot loop -----------------------------------------------------------

    def feed(self, index: int, data: bytes, now: float) -> None:
        """A STUN datagram for client ``index``: let the core handle it, then flush."""
        client = self.clients[index]
        client.receive_datagram(data, now)
        self._after(index, now)

    def service(self, now: float) -> None:
        """Run every client's due timers (retransmissions, refreshes) and flush."""
        for i, client in enumerate(self.clients):
            timer = client.get_timer()
            if timer is not None and now >= timer:
                client.handle_timer(now)
                self._after(i, now, recompute=False)
        self._recompute_timer()

    def _after(self, index: int, now: float, recompute: bool = True) -> None:
        client = self.clients[index]
        sock = self.sockets[index]
        for datagram in client.datagrams_to_send(now):
            # A full buffer is covered by retransmission; a refused port shows up on receive.
            with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                sock.send(datagram)
        while (event := client.next_event()) is not None:
            match event:
                case Allocated(relayed=relayed):
                    self.relayed[index] = relayed
                case PeerReady():
                    self.ready[index] = True
                case Closed():
                    self.closed[index] = True
                case Failed():
                    self.control_failures.append(describe_failure(event, self.target))
        if recompute:
            self._recompute_timer()

    def _recompute_timer(self) -> None:
        timers = [t for c in self.clients if (t := c.get_timer()) is not None]
        self.next_timer = min(timers, default=float("inf"))

    # -- setup and teardown -----------------------------------------------------------------

    def _drive(self, done: list[bool] | list[Address | None], deadline: float, what: str) -> None:
        """Run the control loop until every entry of ``done`` is set, failing loudly.

        ``done`` is one of the per-client lists the event handler fills in, so progress shows
        up without callbacks.
        """
        buf = self.recv_buffer
        started = time.monotonic()
        while not all(done):
            if self.control_failures:
                raise LoadError(self.control_failures[0])
            now = time.monotonic()
            if now >= deadline:
                missing = sum(1 for flag in done if not flag)
                raise LoadError(
                    f"{missing} of {len(done)} clients did not finish {what} within "
                    f"{now - started:.0f} s against {self.target}"
                )
            if now >= self.next_timer:
                self.service(now)
                continue
            timeout = max(0.0, min(self.next_timer, deadline) - now)
            for fd, _ in self.epoll.poll(timeout):
                index = self.by_fd[fd]
                sock = self.sockets[index]
                while True:
                    try:
                        n = sock.recv_into(buf)
                    except BlockingIOError:
                        break
                    except ConnectionRefusedError as exc:
                        raise LoadError(
                            f"nothing listens at {self.target} (UDP port unreachable); "
                            "is the TURN server running?"
                        ) from exc
                    self.feed(index, bytes(buf[:n]), time.monotonic())

    def setup(self) -> None:
        """Allocate every client, then permission + channel to its partner's relayed address."""
        deadline = time.monotonic() + self.config.setup_timeout
        now = time.monotonic()
        for i, client in enumerate(self.clients):
            client.allocate(now)
            self._after(i, now)
        self._drive(self.relayed, deadline, "allocation")
        now = time.monotonic()
        for i, client in enumerate(self.clients):
            partner = self.relayed[i ^ 1]
            assert partner is not None
            client.bind_peer(partner, CHANNEL, now)
            self._after(i, now)
        self._drive(self.ready, deadline, "CreatePermission and ChannelBind")

    def close(self, timeout: float = 3.0) -> None:
        """Delete every allocation (Refresh lifetime 0); never raises, always frees sockets."""
        now = time.monotonic()
        try:
            for i, client in enumerate(self.clients):
                if client.state in (State.ALLOCATED, State.ALLOCATING):
                    client.close(now)
                    self._after(i, now)
                else:
                    self.closed[i] = True
            self.control_failures.clear()
            self._drive(self.closed, now + timeout, "teardown")
        except LoadError:
            pass
        finally:
            self.epoll.close()
            for sock in self.sockets:
                sock.close()
