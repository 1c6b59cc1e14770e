"""The hot loop: paced ChannelData to each partner, receives drained in batches.

Per iteration it sends every packet that is due by now (rate x elapsed, round-robin over the
clients, a burst capped at 10 ms worth so a stall is reported as a shortfall rather than hidden
by a flood), then waits for readability once (epoll, at most until the next packet is due) and
drains each readable socket until EAGAIN. No Trio, no await, no per-packet object beyond the
bytes ``recv_into`` fills: the generator must stay cheaper than the server it measures.

Payload: ``seq (u32) | send time (u64, CLOCK_MONOTONIC ns)`` then zero padding to ``size``.
``seq`` is unique within a worker, so a bitmap counts each delivery once and spots duplicates;
sender and receiver share this machine's monotonic clock, so ``recv time - send time`` is the
one-way latency through the server.
"""

from __future__ import annotations

import struct
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field

from benchmarks.turn_load import netstat
from benchmarks.turn_load.session import CHANNEL, Session

PAYLOAD = struct.Struct(">IQ")
MIN_SIZE = PAYLOAD.size
#: After the send window, wait this long at most for packets still in flight.
DRAIN_SECONDS = 1.0
#: Longest burst one iteration may send, as a fraction of a second of traffic.
MAX_BURST_SECONDS = 0.01


@dataclass(slots=True)
class PumpResult:
    """What one worker measured; merged across workers by :mod:`benchmarks.turn_load.runner`."""

    sent: int = 0
    delivered: int = 0
    duplicates: int = 0
    unexpected: int = 0
    send_errors: int = 0
    refused: int = 0
    #: Monotonic ns of the first and last send, and of the end of the drain.
    first_send_ns: int = 0
    last_send_ns: int = 0
    end_ns: int = 0
    #: CPU seconds this worker process used during send window plus drain.
    cpu_seconds: float = 0.0
    #: One-way latency histogram: microseconds -> packets.
    latency_us: dict[int, int] = field(default_factory=dict)
    control_failures: list[str] = field(default_factory=list)
    #: Datagrams the kernel dropped because this worker's receive buffers were full.
    rcvbuf_drops: int = 0


def run(session: Session, start_ns: int, seconds: float, pps: float, size: int) -> PumpResult:
    """Send for ``seconds`` from ``start_ns`` at ``pps`` across all clients, then drain."""
    result = PumpResult()
    socks = session.sockets
    count = len(socks)
    sends = [s.send for s in socks]
    frames = [bytearray(struct.pack(">HH", CHANNEL, size) + bytes(size)) for _ in socks]
    total = int(pps * seconds)
    seen = bytearray(total + 1)
    latencies = array("q")
    record = latencies.append
    pack_into = PAYLOAD.pack_into
    unpack_from = PAYLOAD.unpack_from
    clock = time.monotonic_ns
    buf = session.recv_buffer
    by_fd = session.by_fd
    poll = session.epoll.poll
    interval_ns = 1e9 / pps
    burst = max(1, int(pps * MAX_BURST_SECONDS))
    end_ns = start_ns + int(seconds * 1e9)
    sent = delivered = duplicates = unexpected = send_errors = refused = 0
    rr = 0

    def drain(timeout: float) -> None:
        nonlocal delivered, duplicates, unexpected, refused
        for fd, _ in poll(timeout):
            index = by_fd[fd]
            recv_into = socks[index].recv_into
            while True:
                try:
                    n = recv_into(buf)
                except BlockingIOError:
                    break
                except ConnectionRefusedError:
                    refused += 1
                    continue
                if buf[0] & 0xC0 == 0x40 and n >= 4 + MIN_SIZE:
                    now = clock()
                    seq, stamp = unpack_from(buf, 4)
                    if seq < total and not seen[seq] and stamp <= now:
                        seen[seq] = 1
                        delivered += 1
                        record(now - stamp)
                    elif seq < total and seen[seq]:
                        duplicates += 1
                    else:
                        unexpected += 1
                elif buf[0] < 0x40:
                    session.feed(index, bytes(buf[:n]), clock() / 1e9)
                else:
                    unexpected += 1

    inodes = netstat.socket_inodes(socks)
    drops0 = netstat.socket_drops(inodes)
    while (now := clock()) < start_ns:
        time.sleep(min(0.001, (start_ns - now) / 1e9))
    cpu0 = time.process_time()
    result.first_send_ns = clock()
    while True:
        now = clock()
        if now >= end_ns or sent >= total:
            break
        due = min(int((now - start_ns) / interval_ns) + 1, total, sent + burst)
        while sent < due:
            frame = frames[rr]
            pack_into(frame, 4, sent, clock())
            try:
                sends[rr](frame)
            except (BlockingIOError, ConnectionRefusedError):
                send_errors += 1
                break
            sent += 1
            rr = rr + 1 if rr + 1 < count else 0
        if now / 1e9 >= session.next_timer:
            session.service(now / 1e9)
        next_due_ns = start_ns + (sent + 1) * interval_ns
        drain(max(0.0, min(next_due_ns - clock(), 1e6) / 1e9))
    result.last_send_ns = clock()
    drain_end = result.last_send_ns + int(DRAIN_SECONDS * 1e9)
    while delivered < sent and clock() < drain_end:
        drain(0.005)
    result.end_ns = clock()
    result.cpu_seconds = time.process_time() - cpu0
    result.sent, result.delivered, result.duplicates = sent, delivered, duplicates
    result.unexpected, result.send_errors, result.refused = unexpected, send_errors, refused
    result.latency_us = dict(Counter(v // 1000 for v in latencies))
    result.control_failures = list(session.control_failures)
    result.rcvbuf_drops = netstat.socket_drops(inodes) - drops0
    return result
