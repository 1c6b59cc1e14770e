"""Time to first allocation: how long a fresh client waits for its relay.

What a browser does when a call starts: a 36-byte Allocate without credentials (REQUESTED-
TRANSPORT and LIFETIME, no SOFTWARE, no FINGERPRINT), the 401 with realm and nonce, the same
Allocate with credentials, the relayed address. A server whose anti-amplification rule leaves
the first request unanswered makes the client wait for its retransmission timeout (RFC 8489:
an RTO of 250-500 ms in browsers; 200 ms here), which this probe shows as time and as
retransmissions. Clients run one after the other, each on its own socket (a fresh five-tuple),
so the figure is latency, not throughput.
"""

from __future__ import annotations

import select
import socket
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.turn_load.client import Allocated, ClientConfig, Failed, TurnClient
from benchmarks.turn_load.credentials import rest_password, rest_username
from benchmarks.turn_load.session import LoadError, describe_failure


@dataclass(frozen=True, slots=True)
class FirstContact:
    """Figures over ``clients`` fresh allocations."""

    clients: int
    p50_ms: float
    max_ms: float
    retransmitted: int
    """Allocations that needed at least one retransmission (0 when every first request is
    answered at once)."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _one(host: str, port: int, config: ClientConfig, timeout: float) -> tuple[float, int]:
    """Seconds from the first datagram to the relayed address, and datagrams sent."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    client = TurnClient(config)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))
        started = time.monotonic()
        client.allocate(started)
        sent = 0
        deadline = started + timeout
        while True:
            now = time.monotonic()
            for datagram in client.datagrams_to_send(now):
                sock.send(datagram)
                sent += 1
            while (event := client.next_event()) is not None:
                if isinstance(event, Allocated):
                    elapsed = now - started
                    client.close(now)
                    for datagram in client.datagrams_to_send(now):
                        sock.send(datagram)  # delete it; the answer does not matter here
                    return elapsed, sent
                if isinstance(event, Failed):
                    raise LoadError(describe_failure(event, f"{host}:{port}"))
            if now >= deadline:
                raise LoadError(f"no allocation from {host}:{port} within {timeout:.0f} s")
            timer = client.get_timer()
            wait = max(0.0, min(deadline, timer if timer is not None else deadline) - now)
            readable, _, _ = select.select([sock], [], [], wait)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionRefusedError as exc:
                    raise LoadError(f"nothing listens at {host}:{port}") from exc
                client.receive_datagram(data, time.monotonic())
            else:
                client.handle_timer(time.monotonic())


def measure_first_contact(host: str, port: int, secret: str, *, realm: str | None,
                          region: str | None, clients: int = 20,
                          timeout: float = 5.0) -> FirstContact:
    """Allocate ``clients`` times, browser-style, one after the other."""
    times: list[float] = []
    retransmitted = 0
    expiry = int(time.time()) + 3600
    for i in range(clients):
        username = rest_username(expiry, f"first-contact-{i}", region)
        config = ClientConfig(username, rest_password(secret, username), realm=realm,
                              software="", fingerprint_unauthenticated=False)
        elapsed, sent = _one(host, port, config, timeout)
        times.append(elapsed)
        retransmitted += sent > 2  # the unauthenticated Allocate, then the authenticated one
    return FirstContact(clients, round(statistics.median(times) * 1000, 2),
                        round(max(times) * 1000, 2), retransmitted)


__all__ = ["FirstContact", "measure_first_contact"]
