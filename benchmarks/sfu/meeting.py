"""The measurement loop of ``--load meeting``: Chromium-shaped media both ways, through SRTP.

Each publisher is a :class:`benchmarks.media.Publisher` (Opus plus VP8 with keyframe bursts,
negotiated header extensions) whose packets get the tail stamp (stream, number, send time)
right before SRTP protection; it sends SR compounds and answers PLI/FIR from the server with a
keyframe. Each subscriber decrypts every packet, checks the stamp (loss, duplicates, latency
from the publisher's send to this decrypt, on ``CLOCK_MONOTONIC``), and sends RR, NACK, PLI
and TWCC feedback through :class:`benchmarks.media.ReceiverFeedback`.

As in :mod:`benchmarks.sfu.pump`, everything is synchronous and batched: per 1 ms tick the due
packets of every publisher leave back to back, RTCP is polled every 10 ms, and ``epoll``
drains every readable socket until ``BlockingIOError``. Besides that latency, each packet's
latency to the kernel's receive stamp on the subscriber's socket is measured too: the server's
share alone (see :func:`_read`).
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from benchmarks.media import (
    CHROMIUM_AUDIO,
    CHROMIUM_VIDEO,
    ExtensionIds,
    Publisher,
    ReceiverFeedback,
    SenderReports,
    read_tail,
    write_tail,
)
from benchmarks.sfu.pump import (
    TICK_NS,
    TIMER_EVERY_NS,
    Address,
    Control,
    PumpResult,
    drain,
    wait_until,
)
from router.rtp import Fir, Pli, RtcpDecodeError, parse_rtcp_compound
from router.transport import fastpath

RTCP_EVERY_NS = 10_000_000
_BATCH = 256
#: The compiled ``recvmmsg`` loop when the router's fast path is built and on, else None.
_RECV_BATCH: Callable[[int, int, list[tuple[bytes, Address]], list[int]],
                      tuple[int, int, int]] | None = (
    fastpath.compiled().recv_batch if fastpath.enabled() else None)
#: Linux's socket option for nanosecond kernel receive stamps (``SCM_TIMESTAMPNS``; the
#: ``socket`` module does not name it; 35 in asm-generic, the compiled helper's own copy wins).
SO_TIMESTAMPNS: int = fastpath.compiled().SO_TIMESTAMPNS if fastpath.enabled() else 35
_STAMP_SPACE = socket.CMSG_SPACE(16)
_TIMESPEC = struct.Struct("=qq")
#: Payload types a subscriber counts as retransmissions (RTX), not as media.
RTX_PAYLOAD_TYPES = frozenset({97})


class Srtp(Protocol):
    """What the loop needs from an SRTP context (the router's ``SrtpContext`` has it)."""

    def protect_rtp(self, packet: bytes) -> bytes | None: ...

    def protect_rtcp(self, packet: bytes) -> bytes | None: ...

    def unprotect_rtp(self, data: bytes) -> bytes | None: ...

    def unprotect_rtcp(self, data: bytes) -> bytes | None: ...


@dataclass(slots=True)
class MeetingSender:
    """A publisher's socket: its SSRCs (audio, video), first stream id and negotiated ids."""

    sock: socket.socket
    dest: Address
    srtp: Srtp | None
    control: Control | None
    ssrcs: list[int]
    first_stream: int
    audio_ids: ExtensionIds = CHROMIUM_AUDIO
    video_ids: ExtensionIds = CHROMIUM_VIDEO
    publisher: Publisher | None = None
    reports: SenderReports | None = None
    keyframe_requests: int = 0


@dataclass(slots=True)
class MeetingReceiver:
    """A subscriber's socket and the streams it must receive."""

    sock: socket.socket
    srtp: Srtp | None
    control: Control | None
    streams: tuple[int, ...]
    feedback: ReceiverFeedback
    dest: Address | None = None
    rtx_payload_types: frozenset[int] = RTX_PAYLOAD_TYPES
    seen: dict[int, bytearray] = field(default_factory=dict)
    received: int = 0
    octets: int = 0
    duplicates: int = 0
    corrupt: int = 0
    retransmissions: int = 0


@dataclass(frozen=True, slots=True)
class MeetingLoad:
    """Per-publisher shape of the load."""

    video_bps: float = 1_500_000
    nack_probability: float = 0.005
    pli_interval: float | None = 20.0


def run(senders: list[MeetingSender], receivers: list[MeetingReceiver], *, start_ns: int,
        seconds: float, load: MeetingLoad, seed: int = 0,
        timers: Callable[[], None] | None = None) -> PumpResult:
    """Publish for ``seconds`` from ``start_ns``, receive until everything arrived or the
    drain gives up, and count. The receivers' sockets carry :func:`stamp_arrivals` already
    (the worker sets it once per session); without it the socket latency is the read's."""
    rng = random.Random(seed)
    start_s = start_ns / 1e9
    bases: dict[int, int] = {}
    for s in senders:
        if s.publisher is None:  # the first window; later ones continue the same streams
            s.publisher = Publisher.meeting(
                first_stream=s.first_stream, ssrcs=s.ssrcs, start=start_s, rng=rng,
                video_bps=load.video_bps, audio_ids=s.audio_ids, video_ids=s.video_ids)
            s.reports = SenderReports(s.publisher.streams, rng)
        else:
            s.publisher.resume(start_s, load.video_bps)
        bases.update((stream.stream, stream.next_number) for stream in s.publisher.streams)
    for r in receivers:
        r.seen = {stream: bytearray(1024) for stream in r.streams}
        r.received = r.octets = r.duplicates = r.corrupt = r.retransmissions = 0
        r.feedback.nack_probability = load.nack_probability
        r.feedback.pli_interval = load.pli_interval
    for s in senders:
        s.keyframe_requests = 0
    by_fd: dict[int, MeetingSender | MeetingReceiver] = {r.sock.fileno(): r for r in receivers}
    by_fd.update({s.sock.fileno(): s for s in senders})
    poller = select.epoll()
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    histogram: dict[int, int] = {}
    queued_histogram: dict[int, int] = {}
    sent_per_stream: dict[int, int] = {}
    buffer = bytearray(65536)
    view = memoryview(buffer)
    sent = send_errors = first_send = last_send = 0
    end_send = start_ns + int(seconds * 1e9)
    next_timer = start_ns + TIMER_EVERY_NS
    next_rtcp = start_ns + RTCP_EVERY_NS
    cpu0 = time.process_time()
    wait_until(start_ns)
    now = time.monotonic_ns()
    while now < end_send:
        now_s = now / 1e9
        for s in senders:
            assert s.publisher is not None
            protect = s.srtp.protect_rtp if s.srtp is not None else bytes
            sock, dest = s.sock, s.dest
            for packet in s.publisher.poll(now_s):
                stamp = time.monotonic_ns()
                write_tail(packet.data, packet.stream, packet.number, stamp)
                data = protect(bytes(packet.data))
                if data is None:
                    send_errors += 1
                    continue
                try:
                    sock.sendto(data, dest)
                except OSError:
                    send_errors += 1
                    continue
                sent += 1
                sent_per_stream[packet.stream] = packet.number + 1 - bases[packet.stream]
                if not first_send:
                    first_send = stamp
                last_send = stamp
        if now >= next_rtcp:
            next_rtcp = now + RTCP_EVERY_NS
            _send_rtcp(senders, receivers, now_s)
        now = time.monotonic_ns()
        _receive(poller.poll((TICK_NS - (now - start_ns) % TICK_NS) / 1e9), by_fd, view,
                 histogram, bases, queued_histogram)
        now = time.monotonic_ns()
        if timers is not None and now >= next_timer:
            timers()
            next_timer = now + TIMER_EVERY_NS
    expected = sum(sent_per_stream.get(stream, 0) for r in receivers for stream in r.streams)
    drain(lambda: _receive(poller.poll(0.01), by_fd, view, histogram, bases, queued_histogram),
          lambda: sum(r.received for r in receivers) >= expected)
    end = time.monotonic_ns()
    cpu = time.process_time() - cpu0
    poller.close()
    return PumpResult(
        sent=sent, expected=expected, delivered=sum(r.received for r in receivers),
        duplicates=sum(r.duplicates for r in receivers),
        corrupt=sum(r.corrupt for r in receivers), send_errors=send_errors,
        first_send_ns=first_send, last_send_ns=last_send, end_ns=end, cpu_seconds=cpu,
        latency_us=histogram, queued_latency_us=queued_histogram,
        delivered_octets=sum(r.octets for r in receivers),
        retransmissions=sum(r.retransmissions for r in receivers),
        keyframe_requests=sum(s.keyframe_requests for s in senders),
    )  # fmt: skip


def _send_rtcp(senders: list[MeetingSender], receivers: list[MeetingReceiver],
               now_s: float) -> None:
    for s in senders:
        assert s.reports is not None
        for compound in s.reports.poll(now_s):
            _send_one_rtcp(s.sock, s.srtp, s.dest, compound)
    for r in receivers:
        if r.dest is None:
            continue
        for compound in r.feedback.poll(now_s):
            _send_one_rtcp(r.sock, r.srtp, r.dest, compound)


def _send_one_rtcp(sock: socket.socket, srtp: Srtp | None, dest: Address,
                   compound: bytes) -> None:
    data = srtp.protect_rtcp(compound) if srtp is not None else compound
    if data is not None:
        with contextlib.suppress(OSError):
            sock.sendto(data, dest)


def _read(sock: socket.socket, fd: int,
          view: memoryview) -> list[tuple[bytes, Address, int, int]]:
    """Everything queued on one socket, each datagram with two arrival stamps (ns, monotonic):
    when the generator read it, and when the kernel queued it on the socket.

    The second (``SO_TIMESTAMPNS``, set by :func:`stamp_arrivals`) is the server's side of the
    latency: a loopback datagram is queued on the subscriber's socket inside the server's send
    call, so it excludes the time the datagram then waits for this one-core generator to come
    round to that socket. The kernel stamps on ``CLOCK_REALTIME``; the offset to
    ``CLOCK_MONOTONIC`` is read once per call. A datagram without a stamp gets the read's.

    With the router's compiled fast path, ``recvmmsg`` reads up to 256 datagrams per call and
    one stamp after the call serves them all (they were all queued by then, as each one is when
    ``recvfrom`` returns): the generator's per-datagram cost bounds the rates a bench can show.
    """
    out: list[tuple[bytes, Address, int, int]] = []
    offset = time.time_ns() - time.monotonic_ns()
    if _RECV_BATCH is not None:
        while True:
            batch: list[tuple[bytes, Address]] = []
            stamps: list[int] = []
            got, _, error = _RECV_BATCH(fd, _BATCH, batch, stamps)
            arrived = time.monotonic_ns()
            out += [(data, addr, arrived, stamp - offset if stamp else arrived)
                    for (data, addr), stamp in zip(batch, stamps, strict=True)]
            if got < _BATCH and not error:
                return out
    while True:
        try:
            n, ancillary, _, addr = sock.recvmsg_into([view], _STAMP_SPACE)
        except (BlockingIOError, InterruptedError):
            return out
        except OSError:
            continue
        arrived = time.monotonic_ns()
        queued = arrived
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
                seconds, nanoseconds = _TIMESPEC.unpack_from(value)
                queued = seconds * 1_000_000_000 + nanoseconds - offset
        out.append((bytes(view[:n]), addr, arrived, queued))


def stamp_arrivals(sock: socket.socket) -> None:
    """Have the kernel stamp each datagram this socket receives (see :func:`_read`). Set before
    the window starts: Linux turns the stamping on for the first socket asynchronously."""
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def _receive(events: list[tuple[int, int]], by_fd: dict[int, MeetingSender | MeetingReceiver],
             view: memoryview, histogram: dict[int, int], bases: dict[int, int],
             queued_histogram: dict[int, int]) -> int:
    """Drain every readable socket; returns how many datagrams arrived. ``histogram`` gets
    each media packet's latency to its decrypt, ``queued_histogram`` to its kernel stamp."""
    count = 0
    for fd, _ in events:
        owner = by_fd[fd]
        sock, srtp = owner.sock, owner.srtp
        receiver = owner if isinstance(owner, MeetingReceiver) else None
        sender = owner if isinstance(owner, MeetingSender) else None
        datagrams = _read(sock, fd, view)
        count += len(datagrams)
        for data, addr, arrived, queued in datagrams:
            if not 128 <= data[0] <= 191:
                if owner.control is not None:
                    owner.control(data, addr)  # STUN or DTLS: the transport core's business
                continue
            if 192 <= data[1] <= 223:
                plain = srtp.unprotect_rtcp(data) if srtp is not None else data
                if plain is not None and sender is not None:
                    _publisher_rtcp(sender, plain)
                continue
            if receiver is None:
                continue
            plain = srtp.unprotect_rtp(data) if srtp is not None else data
            if plain is None:
                receiver.corrupt += 1
                continue
            if plain[1] & 0x7F in receiver.rtx_payload_types:
                receiver.retransmissions += 1
                continue
            try:
                stream, number, stamp = read_tail(plain)
                seen = receiver.seen[stream]
                number -= bases[stream]
            except (KeyError, struct.error):
                receiver.corrupt += 1
                continue
            if number < 0:  # a late packet of the previous window
                continue
            if number >= len(seen):
                seen.extend(bytes(max(number + 1 - len(seen), len(seen))))
            if seen[number]:
                receiver.duplicates += 1
                continue
            seen[number] = 1
            receiver.received += 1
            receiver.octets += len(plain)
            receiver.feedback.on_rtp(arrived / 1e9, plain)
            micros = (arrived - stamp) // 1000
            histogram[micros] = histogram.get(micros, 0) + 1
            micros = (queued - stamp) // 1000
            queued_histogram[micros] = queued_histogram.get(micros, 0) + 1
    return count


def _publisher_rtcp(sender: MeetingSender, compound: bytes) -> None:
    """PLI or FIR from the server: the next frame of that SSRC is a keyframe."""
    try:
        packets = parse_rtcp_compound(compound)
    except RtcpDecodeError:
        return
    for packet in packets:
        if isinstance(packet, Pli) and sender.publisher is not None:
            sender.publisher.request_keyframe(packet.media_ssrc)
            sender.keyframe_requests += 1
        elif isinstance(packet, Fir) and sender.publisher is not None:
            for entry in packet.entries:
                sender.publisher.request_keyframe(entry.ssrc)
            sender.keyframe_requests += 1


__all__ = ["MeetingLoad", "MeetingReceiver", "MeetingSender", "Srtp", "run"]
