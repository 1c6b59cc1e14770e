"""The measurement loop of one load worker: paced sends, batched receives, payload checks.

Per-packet work is kept to what a real client must do (SRTP protect/unprotect and one syscall)
because the clients share one core with each other (the router has the other): per 1 ms tick
every publisher's due packets go out back to back, then ``epoll`` waits until the next tick and
every readable socket is drained until ``BlockingIOError``. Nothing here awaits: the Trio setup
code calls :func:`run` synchronously, which also keeps the signaling WebSockets open but idle.

Media goes straight through the SRTP context; everything else a socket receives (STUN consent
responses, RTCP, DTLS) goes to the transport core through ``control``, and due core timers run
every 200 ms, so consent freshness keeps working in long runs.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.sfu.payload import HEADER, PAYLOAD_TYPE, STAMP, payload_offset

Address = tuple[str, int]
Protect = Callable[[bytes], bytes | None]
#: Feeds a non-media datagram to the client's transport core and sends what it queues.
Control = Callable[[bytes, Address], None]

TICK_NS = 1_000_000
#: After the send window, stop waiting when nothing arrived for this long.
DRAIN_IDLE_NS = 300_000_000
#: Never drain for longer than this after the send window.
DRAIN_MAX_NS = 3_000_000_000
TIMER_EVERY_NS = 200_000_000


@dataclass(slots=True)
class Sender:
    """One publisher's media socket."""

    sock: socket.socket
    dest: Address
    protect: Protect | None
    ssrc: int
    index: int
    seq: int = 0


@dataclass(slots=True)
class Receiver:
    """One subscriber's media socket and what it expects from which publishers."""

    sock: socket.socket
    unprotect: Protect | None
    control: Control | None
    publishers: tuple[int, ...]
    #: Per publisher index: one byte per sequence number seen (duplicates are counted).
    seen: dict[int, bytearray] = field(default_factory=dict)
    received: int = 0
    duplicates: int = 0
    corrupt: int = 0


@dataclass(slots=True)
class PumpResult:
    """What one worker measured; the parent adds these up."""

    sent: int
    expected: int
    delivered: int
    duplicates: int
    corrupt: int
    send_errors: int
    first_send_ns: int
    last_send_ns: int
    end_ns: int
    cpu_seconds: float
    #: Latency histogram: microseconds -> count (JSON turns keys into strings).
    latency_us: dict[int, int]
    #: Bytes of the delivered (decrypted) RTP packets, headers included.
    delivered_octets: int = 0
    #: RTX packets subscribers received (answers to their NACKs; not counted as delivered).
    retransmissions: int = 0
    #: PLI/FIR the publishers received from the server.
    keyframe_requests: int = 0
    #: ``--load meeting``: latency to the kernel's receive stamp on the subscriber's socket
    #: (the server's share, without the generator's own queueing), as ``latency_us``.
    queued_latency_us: dict[int, int] = field(default_factory=dict)


def run(senders: list[Sender], receivers: list[Receiver], *, start_ns: int, seconds: float,
        pps: float, size: int, timers: Callable[[], None] | None = None) -> PumpResult:
    """Send ``pps`` packets per second (all senders together) for ``seconds`` from
    ``start_ns``, receive until everything arrived or the drain gives up, and count."""
    total = int(pps * seconds)
    per_sender = total // len(senders) + 1 if senders else 0
    for r in receivers:
        r.seen = {p: bytearray(per_sender + 1) for p in r.publishers}
        r.received = r.duplicates = r.corrupt = 0
    # Later windows continue each sender's RTP numbering (SRTP must see no jump); stamps
    # count from 0 in every window.
    bases = {s.index: s.seq for s in senders}
    poller = select.epoll()
    by_fd = {r.sock.fileno(): r for r in receivers}
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    padding = bytes(size - STAMP.size)
    histogram: dict[int, int] = {}
    buffer = bytearray(65536)
    view = memoryview(buffer)
    sent = send_errors = 0
    first_send = last_send = 0
    ns_per_packet = 1e9 / pps
    end_send = start_ns + int(seconds * 1e9)
    next_timer = start_ns + TIMER_EVERY_NS
    cpu0 = time.process_time()
    wait_until(start_ns)
    turn = 0
    n_senders = len(senders)
    now = time.monotonic_ns()
    while now < end_send and sent < total:
        due = min(total, int((now - start_ns) / ns_per_packet) + 1) - sent
        while due > 0:
            s = senders[turn]
            turn = (turn + 1) % n_senders
            seq = s.seq
            stamp = time.monotonic_ns()
            packet = HEADER.pack(0x80, PAYLOAD_TYPE, seq & 0xFFFF, (seq * 960) & 0xFFFFFFFF,
                                 s.ssrc) + STAMP.pack(s.index, seq - bases[s.index], stamp) \
                + padding
            if s.protect is not None:
                protected = s.protect(packet)
                if protected is None:
                    send_errors += 1
                    due -= 1
                    sent += 1
                    continue
                packet = protected
            try:
                s.sock.sendto(packet, s.dest)
            except OSError:
                send_errors += 1
            s.seq = seq + 1
            sent += 1
            due -= 1
            if not first_send:
                first_send = stamp
            last_send = stamp
        now = time.monotonic_ns()
        wait_ns = TICK_NS - (now - start_ns) % TICK_NS
        _receive(poller.poll(wait_ns / 1e9), by_fd, view, histogram)
        now = time.monotonic_ns()
        if timers is not None and now >= next_timer:
            timers()
            next_timer = now + TIMER_EVERY_NS
    expected = sum(
        sum(min(per_sender, _planned(sent, n_senders, p)) for p in r.publishers)
        for r in receivers
    )
    drain(lambda: _receive(poller.poll(0.01), by_fd, view, histogram),
          lambda: sum(r.received for r in receivers) >= expected)
    end = time.monotonic_ns()
    cpu = time.process_time() - cpu0
    poller.close()
    return PumpResult(
        sent=sent, expected=expected, delivered=sum(r.received for r in receivers),
        duplicates=sum(r.duplicates for r in receivers),
        corrupt=sum(r.corrupt for r in receivers), send_errors=send_errors,
        first_send_ns=first_send, last_send_ns=last_send, end_ns=end, cpu_seconds=cpu,
        latency_us=histogram, delivered_octets=sum(r.received for r in receivers) * (size + 12),
    )  # fmt: skip


def wait_until(start_ns: int) -> None:
    """Sleep until ``CLOCK_MONOTONIC`` reaches ``start_ns`` (the window's common start)."""
    while (now := time.monotonic_ns()) < start_ns:
        time.sleep(min((start_ns - now) / 1e9, 0.01))


def drain(receive: Callable[[], int], done: Callable[[], bool]) -> None:
    """After the send window: receive until ``done()``, nothing arrived for
    :data:`DRAIN_IDLE_NS`, or :data:`DRAIN_MAX_NS` passed. ``receive`` waits up to 10 ms and
    returns how many datagrams came."""
    drain_end = time.monotonic_ns() + DRAIN_MAX_NS
    idle_since = time.monotonic_ns()
    while not done():
        now = time.monotonic_ns()
        if now > drain_end or now - idle_since > DRAIN_IDLE_NS:
            return
        if receive():
            idle_since = time.monotonic_ns()


def _planned(sent: int, senders: int, index: int) -> int:
    """How many of ``sent`` round-robin packets sender ``index`` sent."""
    base, extra = divmod(sent, senders)
    return base + (1 if index < extra else 0)


def _receive(events: list[tuple[int, int]], by_fd: dict[int, Receiver], view: memoryview,
             histogram: dict[int, int]) -> int:
    """Drain every readable socket; returns how many datagrams arrived."""
    count = 0
    for fd, _ in events:
        r = by_fd[fd]
        sock, unprotect = r.sock, r.unprotect
        while True:
            try:
                n, addr = sock.recvfrom_into(view)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue
            arrived = time.monotonic_ns()
            count += 1
            data = bytes(view[:n])
            if not 128 <= data[0] <= 191 or 192 <= data[1] <= 223:
                if r.control is not None:
                    r.control(data, addr)  # STUN, DTLS or RTCP: the transport core's business
                continue
            if unprotect is not None:
                plain = unprotect(data)
                if plain is None:
                    r.corrupt += 1
                    continue
                data = plain
            try:
                index, seq, stamp = STAMP.unpack_from(data, payload_offset(data))
                seen = r.seen[index]
                if seen[seq]:
                    r.duplicates += 1
                    continue
                seen[seq] = 1
            except (IndexError, KeyError, struct.error):
                r.corrupt += 1
                continue
            r.received += 1
            micros = (arrived - stamp) // 1000
            histogram[micros] = histogram.get(micros, 0) + 1
    return count


__all__ = ["Control", "Protect", "PumpResult", "Receiver", "Sender", "drain", "run",
           "wait_until"]
