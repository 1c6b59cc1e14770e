"""Two or more transport cores wired together in virtual time, with a lossy network between.

``Network.run_until(predicate)`` alternates delivering queued datagrams and advancing the clock
to the earliest core deadline, exactly what a driver would do, but without sockets or sleeping.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from router.transport import (
    ClientTransport,
    DtlsCertificate,
    DtlsRole,
    TransportConfig,
    TransportEvent,
    TransportMux,
)
from router.transport.events import Address
from router.transport.peer import PeerTransport

SERVER_ADDR: Address = ("198.51.100.1", 3478)
CLIENT_ADDR: Address = ("203.0.113.7", 50000)

SERVER_CERT = DtlsCertificate.generate()
CLIENT_CERT = DtlsCertificate.generate()

Drop = Callable[[bytes, Address, Address], bool]


@dataclass
class Network:
    """A router mux and any number of clients exchanging datagrams in virtual time."""

    mux: TransportMux
    now: float = 0.0
    clients: dict[Address, ClientTransport] = field(default_factory=dict)
    #: Return True to drop a datagram (data, source, destination).
    drop: Drop | None = None
    server_events: list[tuple[PeerTransport, TransportEvent]] = field(default_factory=list)
    client_events: dict[Address, list[TransportEvent]] = field(default_factory=dict)
    delivered: int = 0

    def step(self) -> bool:
        """Deliver everything queued once; return whether anything moved."""
        moved = False
        for data, dest in self.mux.datagrams_to_send(self.now):
            moved = True
            client = self.clients.get(dest)
            if client is None or (self.drop and self.drop(data, SERVER_ADDR, dest)):
                continue
            self.delivered += 1
            client.receive_datagram(data, SERVER_ADDR, self.now)
        for addr, client in self.clients.items():
            for data, dest in client.datagrams_to_send(self.now):
                moved = True
                if dest != SERVER_ADDR or (self.drop and self.drop(data, addr, dest)):
                    continue
                self.delivered += 1
                self.mux.receive_datagram(data, addr, self.now)
        self.collect()
        return moved

    def collect(self) -> None:
        while (item := self.mux.next_event()) is not None:
            self.server_events.append(item)
        for addr, client in self.clients.items():
            events = self.client_events.setdefault(addr, [])
            while (event := client.next_event()) is not None:
                events.append(event)

    def advance(self) -> bool:
        """Move the clock to the earliest deadline and run timers; False if there is none."""
        deadlines = [t for t in [self.mux.get_timer()] if t is not None]
        deadlines += [t for c in self.clients.values() if (t := c.get_timer()) is not None]
        if not deadlines:
            return False
        self.now = max(self.now, min(deadlines))
        self.mux.handle_timer(self.now)
        for client in self.clients.values():
            timer = client.get_timer()
            if timer is not None and timer <= self.now:
                client.handle_timer(self.now)
        self.collect()
        return True

    def settle(self) -> None:
        """Deliver until nothing moves (no time passes)."""
        for _ in range(1000):
            if not self.step():
                return
        raise AssertionError("network did not settle")

    def run_until(self, done: Callable[[], bool], *, limit: float = 120.0) -> None:
        """Deliver and advance time until ``done()``; fail if ``limit`` virtual seconds pass."""
        start = self.now
        while not done():
            if not self.step() and not self.advance():
                raise AssertionError("nothing left to do and the condition never held")
            if self.now - start > limit:
                raise AssertionError(f"condition not met within {limit} virtual seconds")


def make_pair(
    *,
    config: TransportConfig | None = None,
    server_role: DtlsRole = DtlsRole.SERVER,
    client_profiles_fingerprint: str | None = None,
    server_expects: str | None = None,
    seed: int = 1,
) -> tuple[Network, PeerTransport, ClientTransport]:
    """A mux with one peer and the matching client, not yet connected."""
    config = config or TransportConfig()
    mux = TransportMux(config)
    net = Network(mux)
    client_role = DtlsRole.CLIENT if server_role is DtlsRole.SERVER else DtlsRole.SERVER
    client_ufrag, client_pwd = "cliU", "client-password-0123456789"
    peer = mux.create_peer(
        now=net.now,
        remote_ufrag=client_ufrag,
        remote_password=client_pwd,
        remote_fingerprint=server_expects or str(CLIENT_CERT.fingerprint),
        dtls_role=server_role,
        certificate=SERVER_CERT,
    )
    client = ClientTransport(
        remote_address=SERVER_ADDR,
        remote_ufrag=peer.local_ufrag,
        remote_password=peer.local_password,
        remote_fingerprint=client_profiles_fingerprint or str(SERVER_CERT.fingerprint),
        random=random.Random(seed).random,
        dtls_role=client_role,
        local_ufrag=client_ufrag,
        local_password=client_pwd,
        certificate=CLIENT_CERT,
        config=config,
        now=net.now,
    )
    net.clients[CLIENT_ADDR] = client
    return net, peer, client


def connect(net: Network, peer: PeerTransport, client: ClientTransport) -> None:
    """Run ICE and DTLS to completion on both sides."""
    client.connect(net.now)
    net.run_until(lambda: client.srtp is not None and peer.srtp is not None)
