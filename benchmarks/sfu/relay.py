"""The ceiling: a bare Python UDP fan-out relay, ``python -m benchmarks.sfu.relay``.

It does what the router's media path does minus everything WebRTC (no STUN, DTLS, SRTP, RTP
rewriting): wait until the socket is readable (Trio, like the router's UdpDriver), drain it
with ``recvfrom_into`` a preallocated buffer in batches of at most 256, and ``sendto`` each
datagram to every subscriber of the sender's room. The router's CPU per forwarded packet over
this one's is the price of the real work, measured on the same load in the same run.

Registration, before media: ``\\x00S<room>`` subscribes the sender's address to ``room``,
``\\x00P<room>`` makes the sender a publisher in it; both are acknowledged with ``\\x00A``.
It prints ``{"port": N}`` when ready and runs until SIGTERM.
"""

from __future__ import annotations

import json
import signal
import socket
import sys

import trio

MAX_BATCH = 256
Address = tuple[str, int]


class Relay:
    """Fan-out tables and the drain loop."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rooms: dict[bytes, list[Address]] = {}
        self.publishers: dict[Address, list[Address]] = {}
        self.forwarded = 0

    def register(self, data: bytes, addr: Address) -> None:
        room = data[2:]
        subscribers = self.rooms.setdefault(room, [])
        if data[1:2] == b"S":
            if addr not in subscribers:
                subscribers.append(addr)
        elif data[1:2] == b"P":
            self.publishers[addr] = subscribers  # the same list: later subscribers count too
        self.sock.sendto(b"\x00A", addr)

    async def run(self) -> None:
        sock = self.sock
        buffer = bytearray(65536)
        view = memoryview(buffer)
        recvfrom_into, sendto = sock.recvfrom_into, sock.sendto
        publishers = self.publishers
        while True:
            await trio.lowlevel.wait_readable(sock)
            for _ in range(MAX_BATCH):
                try:
                    n, addr = recvfrom_into(buffer)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue
                data = bytes(view[:n])
                subscribers = publishers.get(addr)
                if subscribers is None:
                    if n > 2 and data[0] == 0:
                        self.register(data, addr)
                    continue
                for dest in subscribers:
                    try:  # noqa: SIM105 - suppress() costs a context manager per packet
                        sendto(data, dest)
                    except OSError:
                        pass
                self.forwarded += len(subscribers)


async def main() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Default buffer sizes, like the router's port: the ceiling must not get a bigger queue.
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    relay = Relay(sock)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay.run)
            print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(trio.run(main))
