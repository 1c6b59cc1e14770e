"""``regio bench fastpath``: each compiled loop against its Python reference, same inputs.

The router's compiled fast path (router/transport/fastpath.py), the forwarding core's
(router/forwarding/_fanout.c, _gcc.c) and the TWCC codec's (router/rtp/_twcc.c) replace
thirteen per-packet loops, and the driver's direct wait skips Trio's scheduler;
``regio bench sfu --python-path`` shows what that does to a whole router under load, on a
machine whose noise is often larger than the difference. This bench isolates each loop in one
process, same data through both paths, and reports microseconds per item and the ratio:

* ``srtp protect``: 256 VP8-sized RTP packets (1,112 bytes), AES-GCM, one batch;
* ``udp send``: the same 256 datagrams to a loopback socket (``sendto`` vs ``sendmmsg``), the
  receiver drained between runs (the kernel's loopback delivery is part of both figures);
* ``udp receive``: 256 queued datagrams read by the driver (``recvfrom`` vs ``recvmmsg``);
* ``SRTP ingest``: 64 SRTP video datagrams from a validated peer to its ``rtp_handler``
  (``TransportMux.receive_datagram`` per datagram, or the compiled ingest loop), per datagram;
* ``one-byte rewrite``: Chromium's extension block (mid, abs-send-time, transport-cc), two ids
  remapped and one stripped, per incoming packet;
* ``fan-out``: the forwarder's per-packet work for a Chrome-shaped video packet to 10
  transport-cc subscribers (router/forwarding/_fanout.c's loop or ``routing._copy``), per copy;
* ``in-order route``: the whole route of the next packet of a stream to 4 transport-cc
  subscribers (``route_rtp``'s reference around the compiled fan-out, or the compiled route);
* ``copy flush``: one incoming packet's copies to 4 subscriber transports protected and queued
  at the end of a batch, as the meeting load's batches mostly are (the media plane's grouping
  into ``send_rtp_batch``, or the compiled flush), per copy;
* ``TWCC feedback``: one feedback about 60 packets through ``SubscriberLink.on_twcc`` into the
  estimator (the compiled walk and delay detector, router/forwarding/_gcc.c, or the Python ones);
* ``transport-wide sequence``: reading a publisher packet's transport-cc number (Chromium's
  extension block), per packet;
* ``TWCC decode``: a subscriber's feedback about 60 packets (runs, a status vector, small and
  large deltas) parsed into statuses and deltas (router/rtp/_twcc.c or the Python loops);
* ``TWCC build``: the feedback the router sends a publisher every 50 ms, 50 packets with 3 lost,
  from its arrival times to the wire bytes;
* ``wakeup``: a datagram every millisecond from another thread, the receiving loop's CPU per
  wakeup waiting through ``trio.lowlevel.wait_readable`` or with the driver's direct wait
  (router/transport/direct_wait.py), another task asleep beside it as in the router.

Each case runs ``repeats`` times and keeps the fastest (least disturbed by other processes).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from router.forwarding import packet as packet_module
from router.transport import fastpath
from router.transport.srtp import (
    AEAD_AES_128_GCM,
    SrtpContext,
    exporter_length,
    split_keying_material,
)
from router.transport.udp_driver import MAX_BATCH, UdpDriver, enlarge_socket_buffers

BATCH = 256
PAYLOAD = 1100


@dataclass(frozen=True, slots=True)
class Figure:
    """One loop, both paths: microseconds per item (packet, datagram, group)."""

    case: str
    python_us: float
    compiled_us: float

    @property
    def ratio(self) -> float:
        """Compiled over Python (below 1: the compiled loop is faster)."""
        return self.compiled_us / self.python_us if self.python_us else 0.0


def _best(run: Callable[[], None], items: int, repeats: int,
          before: Callable[[], None] | None = None) -> float:
    best = float("inf")
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return round(best / items * 1e6, 3)


def _packets() -> list[bytes]:
    return [struct.pack("!BBHII", 0x80, 96, seq, seq * 3000, 0x1234) + bytes(PAYLOAD)
            for seq in range(BATCH)]


def _protect(repeats: int) -> Figure:
    material = os.urandom(exporter_length(AEAD_AES_128_GCM))
    keys = split_keying_material(material, AEAD_AES_128_GCM, is_client=True)
    packets = _packets()
    figures = []
    for fast in (False, True):
        context = SrtpContext(AEAD_AES_128_GCM, *keys, fast=fast)
        out: list[Any] = []

        def protect(c: SrtpContext = context, o: list[Any] = out) -> None:
            c.protect_rtp_batch(packets, ("127.0.0.1", 9), o)

        figures.append(_best(protect, BATCH, repeats, out.clear))
    return Figure("srtp protect (per packet)", *figures)


class _Core:
    """A core with an outbox and a receive counter: the driver's I/O alone."""

    def __init__(self) -> None:
        self.outbox: list[tuple[bytes, Any]] = []
        self.received = 0

    def receive_datagram(self, data: bytes, addr: object, now: float) -> None:
        self.received += 1

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        return []

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        return None


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    enlarge_socket_buffers(sock, 4 * 1024 * 1024)
    sock.setblocking(False)
    return sock


def _drain(sock: socket.socket) -> None:
    while True:
        try:
            sock.recv(65536)
        except BlockingIOError:
            return


def _send(repeats: int) -> Figure:
    packets = _packets()
    receiver = _socket()
    address = receiver.getsockname()
    figures = []
    try:
        for fast in (False, True):
            sender = _socket()
            core = _Core()
            driver = UdpDriver(sender, core, lambda: None, fast=fast)

            def fill(c: _Core = core) -> None:
                _drain(receiver)
                c.outbox[:] = [(p, address) for p in packets]

            figures.append(_best(driver._flush, BATCH, repeats, fill))
            sender.close()
    finally:
        receiver.close()
    return Figure("udp send (per datagram, loopback)", *figures)


def _receive(repeats: int) -> Figure:
    """The driver's read loop alone (its batch also asks Trio for the time): one call reads
    at most the driver's ``MAX_BATCH``, so that is what each timed call is given."""
    packets = _packets()[:MAX_BATCH]
    figures = []
    for fast in (False, True):
        server, client = _socket(), _socket()
        core = _Core()
        driver = UdpDriver(server, core, lambda: None, fast=fast)
        target = server.getsockname()

        def fill(c: socket.socket = client, t: tuple[str, int] = target) -> None:
            for p in packets:
                c.sendto(p, t)

        read = driver._receive_fast if fast else driver._receive
        figures.append(_best(lambda r=read: r(0.0), len(packets), repeats,  # type: ignore[misc]
                             fill))
        server.close()
        client.close()
        if core.received != repeats * len(packets):  # a figure per datagram not all read
            raise RuntimeError(f"the read loop took {core.received} of "
                               f"{repeats * len(packets)} datagrams")
    return Figure("udp receive (per datagram)", *figures)


def _rewrite(repeats: int) -> Figure:
    elements = bytes([0x10, ord("0"), 0x22, 1, 2, 3, 0x31, 0, 7, 0, 0, 0])
    data = (struct.pack("!BBHII", 0x90, 96, 1, 2, 3) + b"\xbe\xde"
            + struct.pack("!H", len(elements) // 4) + elements + bytes(PAYLOAD))
    table = bytearray(range(256))
    table[1], table[2], table[3] = 4, 0, 5
    mapping = bytes(table)
    end = 16 + len(elements)
    compiled = fastpath.compiled().rewrite_one_byte
    assert compiled(data, 16, end, mapping) == packet_module._rewrite_one_byte(data, 16, end,
                                                                               mapping)
    loops = 1000

    def python() -> None:
        for _ in range(loops):
            packet_module._rewrite_one_byte(data, 16, end, mapping)

    def native() -> None:
        for _ in range(loops):
            compiled(data, 16, end, mapping)

    return Figure("one-byte extension rewrite (per packet)", _best(python, loops, repeats),
                  _best(native, loops, repeats))


def _fan_out(repeats: int, subscribers: int = 10) -> Figure:
    """The forwarder's whole per-packet work (benchmarks.forwarding's Chrome-shaped video
    packet to transport-cc subscribers), with the fan-out loop compiled or not."""
    from benchmarks.forwarding import _setup
    from router.forwarding import forwarder as forwarder_module
    from router.forwarding import routing

    compiled = fastpath.forwarding_compiled().fan_out
    loops = 300
    figures = []
    saved, saved_route = routing._fan_out, forwarder_module._route
    try:
        forwarder_module._route = None  # the fan-out alone: route_rtp's reference around it
        for loop in (None, compiled):
            routing._fan_out = loop
            route = _setup(subscribers)

            def drive(r: Callable[[], object] = route) -> None:
                for _ in range(loops):
                    r()

            figures.append(_best(drive, loops * subscribers, repeats))
    finally:
        routing._fan_out, forwarder_module._route = saved, saved_route
    return Figure(f"fan-out (per copy, {subscribers} subscribers, forwarder included)",
                  figures[0], figures[1])


def _route(repeats: int, subscribers: int = 4) -> Figure:
    """An in-order packet's whole route (sequence and jitter bookkeeping, NACK cache, the
    copies to transport-cc subscribers): the compiled route against route_rtp's reference,
    both with the compiled fan-out."""
    from benchmarks.forwarding import _setup
    from router.forwarding import forwarder as forwarder_module

    compiled = fastpath.forwarding_compiled().route
    loops = 300
    figures = []
    saved = forwarder_module._route
    try:
        for loop in (None, compiled):
            forwarder_module._route = loop
            route = _setup(subscribers)

            def drive(r: Callable[[], object] = route) -> None:
                for _ in range(loops):
                    r()

            figures.append(_best(drive, loops, repeats))
    finally:
        forwarder_module._route = saved
    return Figure(f"in-order route (per packet, {subscribers} subscribers, forwarder included)",
                  figures[0], figures[1])


_SERVER = ("192.0.2.1", 3478)
_CLIENT = ("192.0.2.2", 50000)


def _connected() -> tuple[Any, Any, Any]:
    """A mux, its peer and the matching client, through ICE and DTLS for real (in memory)."""
    import random

    from router.transport import ClientTransport, DtlsCertificate, DtlsRole, TransportMux

    server_cert, client_cert = DtlsCertificate.generate(), DtlsCertificate.generate()
    mux = TransportMux()
    peer = mux.create_peer(now=0.0, remote_ufrag="benchU", remote_password="bench-password-0123456",
                           remote_fingerprint=str(client_cert.fingerprint),
                           certificate=server_cert)  # fmt: skip
    client = ClientTransport(remote_address=_SERVER, remote_ufrag=peer.local_ufrag,
                             remote_password=peer.local_password,
                             remote_fingerprint=str(server_cert.fingerprint),
                             random=random.Random(1).random, dtls_role=DtlsRole.CLIENT,
                             local_ufrag="benchU", local_password="bench-password-0123456",
                             certificate=client_cert, now=0.0)  # fmt: skip
    client.connect(0.0)
    now = 0.0
    for _ in range(100):
        for data, _dest in mux.datagrams_to_send(now):
            client.receive_datagram(data, _SERVER, now)
        for data, _dest in client.datagrams_to_send(now):
            mux.receive_datagram(data, _CLIENT, now)
        if client.srtp is not None and peer.srtp is not None:
            mux.datagrams_to_send(now)
            while mux.next_event() is not None:
                pass
            return mux, peer, client
        now += 0.05
        for core in (mux, client):
            deadline = core.get_timer()
            if deadline is not None and deadline <= now:
                core.handle_timer(now)
    raise RuntimeError("the in-memory ICE/DTLS handshake did not complete")


def _ingest(repeats: int) -> Figure:
    """A batch of 64 SRTP video packets from a validated peer into its rtp_handler: the mux's
    receive_datagram per datagram against the compiled ingest loop (fresh packets every run:
    libsrtp's replay check refuses a packet twice)."""
    mux, _peer, client = _connected()
    handled: list[bytes] = []
    mux.set_rtp_handler(lambda _p, plain, _now: handled.append(plain))
    ingest = fastpath.compiled().ingest
    sequence = iter(range(1, 1 << 30))
    receive = mux.receive_datagram
    figures = []
    for fast in (False, True):
        batches: list[list[tuple[bytes, Any]]] = []
        for _ in range(repeats):
            batch = []
            for _ in range(MAX_BATCH):
                seq = next(sequence)
                plain = struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, seq * 3000, 0x1234)
                batch.append((client.srtp.protect_rtp(plain + bytes(PAYLOAD)), _CLIENT))
            batches.append(batch)
        pending = iter(batches)

        def python(runs: Any = pending) -> None:
            for data, addr in next(runs):
                receive(data, addr, 1.0)

        def native(runs: Any = pending) -> None:
            ingest(next(runs), mux.media_table, receive, 1.0)

        figures.append(_best(native if fast else python, MAX_BATCH, repeats))
    if len(handled) != 2 * repeats * MAX_BATCH:
        raise RuntimeError(f"the handler saw {len(handled)} of {2 * repeats * MAX_BATCH}")
    return Figure("SRTP ingest (per datagram, decrypt to handler)", *figures)


def _flush_copies(repeats: int, subscribers: int = 4) -> Figure:
    """The media plane's end of batch under the meeting load: one incoming packet's copies, one
    per subscriber transport, protected and queued (ForwarderPlane.flush's grouping into
    send_rtp_batch, or the compiled loop). With a whole batch per subscriber the grouping
    amortises its frames over many packets and the two paths cost the same; at ~2 datagrams
    per wakeup (the meeting load) a batch holds one or two copies per subscriber."""
    from router.session import forwarder_adapter
    from router.session.forwarder_adapter import ForwarderPlane

    plane = ForwarderPlane()
    outboxes = []
    for i in range(subscribers):
        mux, peer, _client = _connected()
        plane._sinks[f"s{i}"] = peer
        outboxes.append(mux.outbox)
    packet = _packets()[0]
    copies = [(f"s{i}", packet) for i in range(subscribers)]
    loops = 100

    def flush() -> None:
        for _ in range(loops):
            plane.forwarder._rtp_out = list(copies)
            plane.flush()
        for box in outboxes:
            box.clear()

    figures = []
    saved = forwarder_adapter._protect_copies
    try:
        for loop in (None, fastpath.compiled().protect_copies):
            forwarder_adapter._protect_copies = loop
            figures.append(_best(flush, loops * len(copies), repeats))
    finally:
        forwarder_adapter._protect_copies = saved
    return Figure(f"copy flush (per copy, one packet to {subscribers} subscriber transports)",
                  *figures)


def _twcc(repeats: int) -> Figure:
    """One subscriber's TWCC feedback about 60 packets walked into the estimator's input."""
    from router.forwarding import subscriber_links
    from router.forwarding.gcc_delay import PyDelayDetector, make_detector
    from router.forwarding.link_config import LinkConfig
    from router.forwarding.state import Participant
    from router.rtp import TransportCc

    compiled = fastpath.forwarding_compiled().twcc_results
    detectors = (PyDelayDetector(), make_detector())
    if isinstance(detectors[1], PyDelayDetector):
        raise RuntimeError("the compiled delay detector is not built (router/forwarding/_gcc.c)")
    link = subscriber_links.SubscriberLink(Participant("s"), LinkConfig(), 1_000_000, 10_000_000)
    for i in range(200):
        link.take(1100, 0.001 * i)
    statuses = bytes([1] * 55 + [0] * 3 + [2] * 2)
    deltas = tuple([4] * 55 + [-20, 300])
    feedback = TransportCc(1, 2, 100, 1000, 0, statuses, deltas)
    loops = 300
    figures = []
    saved = subscriber_links._twcc_results
    try:
        for loop, detector in zip((None, compiled), detectors, strict=True):
            subscriber_links._twcc_results = loop
            link.estimator._delay = detector
            now = [1.0]

            def walk(lk: subscriber_links.SubscriberLink = link, t: list[float] = now) -> None:
                for _ in range(loops):
                    t[0] += 0.1
                    lk.on_twcc(feedback, t[0])

            figures.append(_best(walk, loops, repeats))
    finally:
        subscriber_links._twcc_results = saved
    return Figure("TWCC feedback, 60 packets (per feedback, estimator included)",
                  figures[0], figures[1])


def _transport_seq(repeats: int) -> Figure:
    """A Chromium publisher packet's transport-wide sequence number (mid, abs-send-time and
    transport-cc in the one-byte form), read once per incoming packet."""
    from router.forwarding.transport_seq import py_read_transport_seq

    elements = bytes([0x10, ord("0"), 0x22, 1, 2, 3, 0x31, 0x12, 0x34, 0, 0, 0])
    data = (struct.pack("!BBHII", 0x90, 96, 1, 2, 3) + b"\xbe\xde"
            + struct.pack("!H", len(elements) // 4) + elements + bytes(PAYLOAD))
    compiled = fastpath.forwarding_compiled().read_transport_seq
    assert compiled(data, 3) == py_read_transport_seq(data, 3) == 0x1234
    loops = 1000

    def python() -> None:
        for _ in range(loops):
            py_read_transport_seq(data, 3)

    def native() -> None:
        for _ in range(loops):
            compiled(data, 3)

    return Figure("transport-wide sequence read (per packet)", _best(python, loops, repeats),
                  _best(native, loops, repeats))


def _with_twcc_codec(compiled: object, run: Callable[[], None]) -> Callable[[], None]:
    """``run`` with the TWCC codec's compiled loops set to ``compiled`` (None: the reference)."""
    from router.forwarding import publisher_feedback
    from router.rtp import twcc

    def wrapped() -> None:
        saved = twcc._compiled, publisher_feedback._arrival_deltas
        twcc._compiled = compiled  # type: ignore[assignment]
        publisher_feedback._arrival_deltas = getattr(compiled, "arrival_deltas", None)
        try:
            run()
        finally:
            twcc._compiled, publisher_feedback._arrival_deltas = saved

    return wrapped


def _twcc_codec() -> Any:
    from router.rtp import twcc

    module = twcc.compiled_twcc()
    if module is None:
        raise RuntimeError("the compiled TWCC codec is not built (router/rtp/_twcc.c)")
    return module


def _twcc_decode(repeats: int) -> Figure:
    """A subscriber's TWCC feedback about 60 packets, decoded as the RTCP parser does."""
    from router.rtp import TransportCc

    statuses = bytes([1] * 20 + [0] * 3 + [1, 2, 1, 1, 0, 1, 1] + [1] * 28 + [2] * 2)
    deltas = tuple([4] * 20 + [3, -20, 5, 6, 7, 8] + [4] * 28 + [-20, 300])
    wire = TransportCc(1, 2, 100, 1000, 0, statuses, deltas).build()
    body = memoryview(wire)[4:]
    loops = 300

    def decode() -> None:
        for _ in range(loops):
            TransportCc.decode(15, body, wire)

    return Figure("TWCC decode, 60 packets (per feedback)",
                  _best(_with_twcc_codec(None, decode), loops, repeats),
                  _best(_with_twcc_codec(_twcc_codec(), decode), loops, repeats))


def _twcc_build(repeats: int) -> Figure:
    """The feedback for one publisher's 50 ms: 50 arrivals (3 lost) to wire bytes."""
    from router.forwarding.publisher_feedback import TwccRecorder

    base = 70_000
    arrivals = {base + i: 1000.0 + 0.001 * i for i in range(50) if i not in (7, 8, 30)}
    recorder = TwccRecorder(3)
    loops = 300

    def build() -> None:
        for _ in range(loops):
            recorder._packet(0x1234, base, base + 50, arrivals)

    return Figure("TWCC build for a publisher, 50 packets (per feedback)",
                  _best(_with_twcc_codec(None, build), loops, repeats),
                  _best(_with_twcc_codec(_twcc_codec(), build), loops, repeats))


def _wakeup(repeats: int, wakeups: int = 100) -> Figure:
    """CPU of the receiving thread per wakeup, one datagram a millisecond (the best of
    ``repeats`` runs of ``wakeups`` each; thread time, so the sender's CPU is not in it)."""
    import threading

    import trio

    from router.transport.direct_wait import direct_wait

    receiver, sender = _socket(), _socket()
    target = receiver.getsockname()

    def pace(stop: threading.Event) -> None:
        while not stop.is_set():
            sender.sendto(b"x" * PAYLOAD, target)
            time.sleep(0.001)

    async def loop(direct: bool) -> float:
        wait = direct_wait(receiver.fileno()) if direct else None
        if direct and wait is None:
            raise RuntimeError("the direct wait is not available with this Trio")
        count = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await trio.lowlevel.wait_readable(receiver)
            _drain(receiver)
            start = time.thread_time()
            while count < wakeups:
                if wait is None or not wait.ready():
                    await trio.lowlevel.wait_readable(receiver)
                    if wait is not None:
                        wait.scheduled()
                _drain(receiver)
                count += 1
            cpu = time.thread_time() - start
            nursery.cancel_scope.cancel()
        if wait is not None:
            trio.lowlevel.remove_instrument(wait)
        return round(cpu / count * 1e6, 3)

    figures = []
    stop = threading.Event()
    thread = threading.Thread(target=pace, args=(stop,), daemon=True)
    thread.start()
    try:
        for direct in (False, True):
            figures.append(min(trio.run(loop, direct) for _ in range(max(1, repeats // 3))))
    finally:
        stop.set()
        thread.join()
        receiver.close()
        sender.close()
    return Figure("wakeup (per datagram at 1 kHz: Trio's wait, then the direct wait)",
                  figures[0], figures[1])


def run(repeats: int = 30) -> list[Figure]:
    """Every case, Python then compiled; RuntimeError (ImportError) if a helper is not built."""
    fastpath.compiled()
    return [_protect(repeats), _send(repeats), _receive(repeats), _ingest(repeats),
            _rewrite(repeats), _fan_out(repeats), _route(repeats), _flush_copies(repeats),
            _twcc(repeats), _transport_seq(repeats), _twcc_decode(repeats), _twcc_build(repeats),
            _wakeup(repeats)]


__all__ = ["Figure", "run"]
