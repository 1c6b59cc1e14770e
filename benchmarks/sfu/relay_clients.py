"""The same participants as the SFU run, against the bare relay: plain sockets, no crypto."""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field

from benchmarks.sfu.pump import Receiver, Sender
from benchmarks.sfu.sfu_clients import SetupError, udp_socket


@dataclass
class RelayParticipants:
    sockets: list[socket.socket] = field(default_factory=list)
    senders: list[Sender] = field(default_factory=list)
    receivers: list[Receiver] = field(default_factory=list)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def _register(sock: socket.socket, relay: tuple[str, int], message: bytes,
              timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.sendto(message, relay)
        ready, _, _ = select.select([sock], [], [], 0.1)
        if ready and sock.recv(16) == b"\x00A":
            return
    raise SetupError("the bare relay did not acknowledge a registration")


def setup(relay: tuple[str, int], rooms: list[str], publishers: int, subscribers: int, *,
          timeout: float = 10.0) -> RelayParticipants:
    """Register every room's subscribers, then its publishers (indices as in the SFU run)."""
    out = RelayParticipants()
    index = 0
    for room in rooms:
        name = room.encode()
        first = index
        subs: list[socket.socket] = []
        for _ in range(subscribers):
            sock = udp_socket()
            out.sockets.append(sock)
            _register(sock, relay, b"\x00S" + name, timeout)
            subs.append(sock)
        for _ in range(publishers):
            sock = udp_socket()
            out.sockets.append(sock)
            _register(sock, relay, b"\x00P" + name, timeout)
            out.senders.append(Sender(sock, relay, None, 0x1000 + index, index))
            index += 1
        out.receivers += [Receiver(sock, None, None, tuple(range(first, index))) for sock in subs]
    return out


__all__ = ["RelayParticipants", "setup"]
