"""The same participants as the SFU run, against the bare SRTP relay: keys exchanged in the
registration instead of DTLS, no ICE; the same SRTP work on the client side as with the router."""

from __future__ import annotations

import os
import random
import select
import socket
import time
from dataclasses import dataclass, field

from benchmarks.media import CHROMIUM_AUDIO, ExtensionIds, ReceiverFeedback
from benchmarks.sfu.meeting import MeetingReceiver, MeetingSender
from benchmarks.sfu.pump import Receiver, Sender
from benchmarks.sfu.relay import KEY_SIZE, registration
from benchmarks.sfu.sfu_clients import SetupError, udp_socket
from router.transport.srtp import AEAD_AES_128_GCM, SrtpContext

#: What the relay's subscribers see: Chromium's ids, unchanged (a relay rewrites nothing).
VIDEO_IDS = ExtensionIds(rid=None)


@dataclass
class RelayParticipants:
    sockets: list[socket.socket] = field(default_factory=list)
    senders: list[Sender] = field(default_factory=list)
    receivers: list[Receiver] = field(default_factory=list)
    meeting_senders: list[MeetingSender] = field(default_factory=list)
    meeting_receivers: list[MeetingReceiver] = field(default_factory=list)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def _register(sock: socket.socket, relay: tuple[str, int], role: bytes, room: bytes,
              timeout: float) -> SrtpContext:
    client_key, relay_key = os.urandom(KEY_SIZE), os.urandom(KEY_SIZE)
    message = registration(role, room, client_key, relay_key)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.sendto(message, relay)
        ready, _, _ = select.select([sock], [], [], 0.1)
        if ready and sock.recv(16) == b"\x00A":
            return SrtpContext(AEAD_AES_128_GCM, client_key, relay_key)
    raise SetupError("the bare relay did not acknowledge a registration")


def setup(relay: tuple[str, int], rooms: list[str], publishers: int, subscribers: int, *,
          timeout: float = 10.0, meeting: bool = False, seed: int = 0) -> RelayParticipants:
    """Register every room's subscribers, then its publishers (indices as in the SFU run)."""
    out = RelayParticipants()
    rng = random.Random(seed)
    index = 0
    for room in rooms:
        name = room.encode()
        first = index
        subs: list[tuple[socket.socket, SrtpContext]] = []
        for _ in range(subscribers):
            sock = udp_socket()
            out.sockets.append(sock)
            subs.append((sock, _register(sock, relay, b"S", name, timeout)))
        for _ in range(publishers):
            sock = udp_socket()
            out.sockets.append(sock)
            srtp = _register(sock, relay, b"P", name, timeout)
            if meeting:
                out.meeting_senders.append(MeetingSender(
                    sock, relay, srtp, None, [0x1000 + 2 * index, 0x1001 + 2 * index],
                    2 * index, CHROMIUM_AUDIO, VIDEO_IDS))
            else:
                sender = Sender(sock, relay, srtp.protect_rtp, 0x1000 + index, index)
                out.senders.append(sender)
            index += 1
        for sock, srtp in subs:
            if meeting:
                streams = tuple(s for i in range(first, index) for s in (2 * i, 2 * i + 1))
                feedback = ReceiverFeedback(ssrc=rng.randrange(1, 2**32), rng=rng,
                                            transport_cc_id=VIDEO_IDS.transport_cc)
                out.meeting_receivers.append(MeetingReceiver(sock, srtp, None, streams,
                                                             feedback, relay))
            else:
                out.receivers.append(Receiver(sock, srtp.unprotect_rtp, None,
                                              tuple(range(first, index))))
    return out


__all__ = ["RelayParticipants", "setup"]
