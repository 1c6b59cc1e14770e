"""The ceiling: a bare Python fan-out relay with SRTP, ``python -m benchmarks.sfu.relay``.

It does the least a media server must do per packet and nothing else WebRTC (no STUN, DTLS,
RTP rewriting, NACK cache, feedback): wait until the socket is readable (Trio, or a plain
``poll`` while Trio has nothing else to do, like the router's UdpDriver), drain it in batches
of at most the driver's ``MAX_BATCH`` (up to its ``DRAIN_ROUNDS`` back to back while each finds
input), decrypt each datagram
(SRTP or SRTCP) and encrypt it once per destination: publishers' RTP and RTCP go to every
subscriber of the room, subscribers' RTCP to the room's publishers. Its socket gets the router's
buffer sizes (``enlarge_socket_buffers``) and the runner pins it like the router, and it reads
and writes with the router's system calls: ``recvmmsg``/``sendmmsg`` through the compiled fast
path when the router has it (router/transport/fastpath.py), ``recvfrom``/``sendto`` when not.
So the router's CPU per forwarded packet over this one's is the price of the router's real work.

Keys are not negotiated (no DTLS): registration, before media, is
``\\x00`` ``S``/``P`` (subscriber/publisher), one byte room length, the room, the client's
28-byte AES-GCM master key+salt, the relay's; acknowledged with ``\\x00A``.
It prints ``{"port": N}`` when ready and runs until SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sys
from dataclasses import dataclass, field

import trio

from router.transport import fastpath
from router.transport.direct_wait import direct_wait
from router.transport.srtp import AEAD_AES_128_GCM, SrtpContext
from router.transport.udp_driver import DRAIN_ROUNDS, MAX_BATCH, enlarge_socket_buffers

KEY_SIZE = AEAD_AES_128_GCM.key_length + AEAD_AES_128_GCM.salt_length
Address = tuple[str, int]


def registration(role: bytes, room: bytes, client_key: bytes, relay_key: bytes) -> bytes:
    """The registration datagram a client sends (see the module docstring)."""
    return b"\x00" + role + bytes([len(room)]) + room + client_key + relay_key


@dataclass(slots=True)
class Peer:
    address: Address
    srtp: SrtpContext
    publisher: bool
    #: Where this peer's packets go (the room's subscribers, or its publishers).
    targets: list[Peer] = field(default_factory=list)


class Relay:
    """Rooms, peers and the drain loop."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.peers: dict[Address, Peer] = {}
        self.rooms: dict[bytes, tuple[list[Peer], list[Peer]]] = {}
        self.forwarded = 0
        self.dropped = 0

    def register(self, data: bytes, addr: Address) -> None:
        if len(data) < 3 or data[1:2] not in (b"S", b"P"):
            self.dropped += 1
            return
        size = data[2]
        room, keys = data[3:3 + size], data[3 + size:]
        if len(keys) != 2 * KEY_SIZE:
            self.dropped += 1
            return
        if addr not in self.peers:
            publishers, subscribers = self.rooms.setdefault(room, ([], []))
            publisher = data[1:2] == b"P"
            srtp = SrtpContext(AEAD_AES_128_GCM, keys[KEY_SIZE:], keys[:KEY_SIZE])
            # The same lists, shared: peers that register later are reached too.
            peer = Peer(addr, srtp, publisher, subscribers if publisher else publishers)
            (publishers if publisher else subscribers).append(peer)
            self.peers[addr] = peer
        self.sock.sendto(b"\x00A", addr)

    async def run(self) -> None:
        """Wait until readable, read a batch, relay it, write what it produced; the reads and
        writes are the router's system calls (recvmmsg/sendmmsg when its fast path is on)."""
        sock = self.sock
        batched = fastpath.enabled()
        fd, family = sock.fileno(), sock.family
        # As the router's driver: a plain poll() instead of Trio's wait while Trio has nothing
        # else to do (router/transport/direct_wait.py), on the fast path only.
        direct = direct_wait(fd) if batched else None
        while True:
            if direct is None or not direct.ready():
                await trio.lowlevel.wait_readable(sock)
                if direct is not None:
                    direct.scheduled()
            # As the router's driver: through Trio, batches back to back while each finds
            # input, at most DRAIN_ROUNDS before waiting on Trio again; with the direct wait,
            # one batch per wait.
            for _ in range(DRAIN_ROUNDS if direct is None else 1):
                batch: list[tuple[bytes, Address]] = []
                if batched:
                    fastpath.recv_batch(fd, MAX_BATCH, batch)
                else:
                    self._read_plain(batch)
                if not batch:
                    break
                out = self.relay(batch)
                if not batched:
                    self._write_plain(out)
                    continue
                while out:
                    consumed, _, stopped = fastpath.send_batch(fd, family, out)
                    del out[:consumed]
                    if stopped == 1:
                        await trio.lowlevel.wait_writable(sock)
                    elif stopped == 2:  # an address only sendto takes (none here; be exact)
                        with contextlib.suppress(OSError):
                            sock.sendto(*out.pop(0))

    def _read_plain(self, batch: list[tuple[bytes, Address]]) -> None:
        recvfrom = self.sock.recvfrom
        for _ in range(MAX_BATCH):
            try:
                batch.append(recvfrom(65536))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue

    def _write_plain(self, out: list[tuple[bytes, Address]]) -> None:
        sendto = self.sock.sendto
        for data, addr in out:
            try:  # noqa: SIM105 - suppress() costs a context manager per packet
                sendto(data, addr)
            except OSError:
                pass

    def relay(self, batch: list[tuple[bytes, Address]]) -> list[tuple[bytes, Address]]:
        """Decrypt each datagram once and encrypt it once per destination: what to send."""
        peers = self.peers
        out: list[tuple[bytes, Address]] = []
        append = out.append
        for data, addr in batch:
            peer = peers.get(addr)
            if peer is None or not data[0] & 0x80:
                if data[:1] == b"\x00":
                    self.register(data, addr)
                continue
            if 192 <= data[1] <= 223:
                plain = peer.srtp.unprotect_rtcp(data)
                if plain is None:
                    self.dropped += 1
                    continue
                for target in peer.targets:
                    protected = target.srtp.protect_rtcp(plain)
                    if protected is not None:
                        append((protected, target.address))
                continue
            if not peer.publisher:
                continue
            plain = peer.srtp.unprotect_rtp(data)
            if plain is None:
                self.dropped += 1
                continue
            for target in peer.targets:
                protected = target.srtp.protect_rtp(plain)
                if protected is not None:
                    append((protected, target.address))
            self.forwarded += len(peer.targets)
        return out


async def main() -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    enlarge_socket_buffers(sock)  # the router's media socket gets the same
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
