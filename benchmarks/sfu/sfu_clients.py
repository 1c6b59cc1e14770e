"""Set up a worker's SFU participants for real: signaling, ICE, DTLS-SRTP (Trio).

Per room, subscribers join first, then each publisher joins and publishes one Opus track; every
subscriber answers the router's offers until it is offered every publisher of its room. Each
media connection is a :class:`~router.transport.ClientTransport` on its own loopback socket,
driven by the house :class:`~router.transport.udp_driver.UdpDriver` until DTLS connects. Then
the drivers stop (sockets stay open) and :mod:`benchmarks.sfu.pump` takes over the sockets,
using the SRTP contexts directly and handing everything else back to the transport cores.
"""

from __future__ import annotations

import contextlib
import random
import socket
from dataclasses import dataclass, field
from typing import Any

import trio

from benchmarks.media import ReceiverFeedback
from benchmarks.sfu import sdp
from benchmarks.sfu.meeting import MeetingReceiver, MeetingSender
from benchmarks.sfu.pump import Control, Receiver, Sender
from benchmarks.sfu.router_proc import NODE_ID
from benchmarks.sfu.tokens import join_token
from router.signaling.client import SignalingClient, SignalingClosed
from router.transport import ClientTransport, DtlsCertificate, DtlsConnected, TransportClosed
from router.transport.dtls import DtlsRole
from router.transport.ice_lite import generate_password, generate_ufrag
from router.transport.udp_driver import UdpDriver

#: Socket buffers for the clients: a 1 ms burst to many subscribers must not overflow them.
SOCKET_BUFFER = 4 << 20


class SetupError(RuntimeError):
    """A participant could not join, negotiate or connect."""


def udp_socket(address: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
    sock.bind((address, 0))
    sock.setblocking(False)
    return sock


@dataclass
class Leg:
    """One media connection: its core, socket and a way to stop its driver."""

    transport: ClientTransport
    sock: socket.socket
    connected: trio.Event = field(default_factory=trio.Event)
    failed: str | None = None
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


@dataclass
class SfuParticipants:
    """Everything a worker set up, and the pump's view of it."""

    signaling: list[SignalingClient] = field(default_factory=list)
    legs: list[Leg] = field(default_factory=list)
    senders: list[Sender] = field(default_factory=list)
    receivers: list[Receiver] = field(default_factory=list)
    #: ``--load meeting``: the same participants as Chromium-shaped publishers/subscribers.
    meeting_senders: list[MeetingSender] = field(default_factory=list)
    meeting_receivers: list[MeetingReceiver] = field(default_factory=list)

    def run_timers(self) -> None:
        """Consent checks and DTLS retransmissions, from inside the pump (sync, Trio clock)."""
        now = trio.current_time()
        for leg in self.legs:
            timer = leg.transport.get_timer()
            if timer is not None and timer <= now:
                leg.transport.handle_timer(now)
                _flush(leg, now)

    async def close(self) -> None:
        for ws in self.signaling:
            with trio.move_on_after(1):
                try:
                    await ws.send({"type": "leave"})
                finally:
                    await ws.close()
        for leg in self.legs:
            leg.sock.close()


def _flush(leg: Leg, now: float) -> None:
    for data, addr in leg.transport.datagrams_to_send(now):
        with contextlib.suppress(OSError):
            leg.sock.sendto(data, addr)
    while leg.transport.next_event() is not None:
        pass


def control_of(leg: Leg) -> Control:
    def control(data: bytes, addr: tuple[str, int]) -> None:
        now = trio.current_time()
        leg.transport.receive_datagram(data, addr, now)
        _flush(leg, now)

    return control


async def start_leg(nursery: trio.Nursery, remote_sdp: str, ufrag: str, pwd: str,
                    cert: DtlsCertificate, rng: random.Random, *,
                    transport_class: type[ClientTransport] = ClientTransport,
                    dtls_role: DtlsRole = DtlsRole.CLIENT, sock: socket.socket | None = None,
                    remote: tuple[str, str, str, tuple[str, int]] | None = None) -> Leg:
    """Connect one media leg (ICE, then DTLS in ``dtls_role``) on ``sock`` (a new loopback
    socket by default) to the server described by ``remote_sdp`` (or ``remote``: ufrag,
    password, fingerprint, address); the driver runs in ``nursery`` until connected."""
    r_ufrag, r_pwd, r_fp, addr = remote or sdp.router_transport(remote_sdp)
    now = trio.current_time()
    transport = transport_class(
        remote_address=addr, remote_ufrag=r_ufrag, remote_password=r_pwd, remote_fingerprint=r_fp,
        random=rng.random, local_ufrag=ufrag, local_password=pwd, certificate=cert, now=now,
        dtls_role=dtls_role,
    )  # fmt: skip
    leg = Leg(transport, sock or udp_socket())

    def on_event() -> None:
        while (event := transport.next_event()) is not None:
            if isinstance(event, DtlsConnected):
                leg.connected.set()
            elif isinstance(event, TransportClosed):
                leg.failed = event.reason
                leg.connected.set()

    driver = UdpDriver(leg.sock, transport, on_event)

    async def run() -> None:
        with leg.scope:
            await driver.run()

    transport.connect(now)
    nursery.start_soon(run)
    return leg


async def setup(url: str, rooms: list[str], publishers: int, subscribers: int, *,
                seed: int, timeout: float = 30.0, meeting: bool = False) -> SfuParticipants:
    """Join, negotiate and connect every participant of ``rooms``; raise SetupError if any
    step fails within ``timeout``. ``meeting``: publishers offer audio and VP8 video with
    Chromium's header extensions (``--load meeting``); otherwise audio alone. ``url`` may name
    several routers (a node's workers) separated by spaces: see :func:`router_for_room`."""
    out = SfuParticipants()
    cert = DtlsCertificate.generate()
    fingerprint = str(cert.fingerprint)
    rng = random.Random(seed)
    index = 0
    try:
        with trio.fail_after(timeout):
            async with trio.open_nursery() as nursery:
                for room in rooms:
                    where, node = router_for_room(url, room)
                    index = await _setup_room(nursery, out, where, room, publishers,
                                              subscribers,
                                              cert, fingerprint, rng, index, meeting, node)
                await finish_connecting(out.legs)
    except trio.TooSlowError:
        raise SetupError(f"participants did not connect within {timeout:g} s") from None
    except BaseExceptionGroup as group:  # the nursery wraps what its body raised
        raise setup_error_in(group) from None
    return out


def router_for_room(urls: str, room: str) -> tuple[str, str]:
    """``(signaling URL, router node id)`` for ``room`` among the space-separated ``urls``
    (a node's workers, ``<node>-w<k>`` in order; one URL: the router itself).

    The bench stands in for the front door, which places rooms on workers by load: every
    bench room carries the same load, so room ``room<k>`` goes to worker ``k mod N`` (whole
    rooms per worker, the same placement in every load-generator process)."""
    choices = urls.split()
    if len(choices) == 1:
        return choices[0], NODE_ID
    number = room.removeprefix("room")
    k = int(number) % len(choices) if number.isdigit() else 0
    return choices[k], f"{NODE_ID}-w{k}"


async def finish_connecting(legs: list[Leg]) -> None:
    """Wait until every leg's DTLS is up (SetupError on the first failure), then stop their
    drivers; the sockets stay open for the pump."""
    for leg in legs:
        await leg.connected.wait()
        if leg.failed:
            raise SetupError(f"a media connection failed: {leg.failed}")
    for leg in legs:
        leg.scope.cancel()


def setup_error_in(group: BaseExceptionGroup[BaseException],
                   *expected: type[BaseException]) -> BaseException:
    """The first error inside nested exception groups, as a SetupError when it means "could
    not connect" (SetupError, OSError, a closed signaling connection, or one of ``expected``)
    so the caller reports it in one line; anything else (a bug) as it is."""
    first: BaseException = group
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    kinds = (SetupError, OSError, SignalingClosed, *expected)
    return SetupError(str(first)) if isinstance(first, kinds) else first


async def _setup_room(nursery: trio.Nursery, out: SfuParticipants, url: str, room: str,
                      publishers: int, subscribers: int, cert: DtlsCertificate,
                      fingerprint: str, rng: random.Random, index: int,
                      meeting: bool = False, node: str = NODE_ID) -> int:
    subs: list[tuple[SignalingClient, str, str]] = []
    for s in range(subscribers):
        ws = await SignalingClient.connect(url)
        out.signaling.append(ws)
        await ws.send({"type": "join", "token": join_token(room, f"{room}-s{s}", router=node)})
        await _expect(ws, "joined")
        subs.append((ws, generate_ufrag(), generate_password()))
    first_index = index
    for p in range(publishers):
        ws = await SignalingClient.connect(url)
        out.signaling.append(ws)
        await ws.send({"type": "join", "token": join_token(room, f"{room}-p{p}", router=node)})
        await _expect(ws, "joined")
        ufrag, pwd = generate_ufrag(), generate_password()
        ssrc = rng.randrange(1, 2**32)
        video_ssrc = rng.randrange(1, 2**32 - 1) if meeting else None
        publish_sdp = sdp.publisher_offer(ufrag, pwd, fingerprint, ssrc, video_ssrc,
                                          chromium_extensions=meeting)
        await ws.send({"type": "publish", "sdp": publish_sdp})
        answer = await _expect(ws, "answer")
        leg = await start_leg(nursery, answer["sdp"], ufrag, pwd, cert, rng)
        out.legs.append(leg)
        dest = leg.transport.remote_address
        if meeting:
            assert video_ssrc is not None
            out.meeting_senders.append(MeetingSender(
                leg.sock, (dest[0], dest[1]), None, control_of(leg), [ssrc, video_ssrc],
                2 * index, sdp.negotiated_extensions(answer["sdp"], "audio"),
                sdp.negotiated_extensions(answer["sdp"], "video")))
        else:
            out.senders.append(Sender(leg.sock, (dest[0], dest[1]), None, ssrc, index))
            out.receivers.append(Receiver(leg.sock, None, control_of(leg), ()))
        index += 1
    expected = tuple(range(first_index, index))
    tracks_per_publisher = 2 if meeting else 1
    for ws, ufrag, pwd in subs:
        tracks: dict[str, str] = {}
        sub_leg: Leg | None = None
        while len(tracks) < publishers * tracks_per_publisher:
            offer = await _expect(ws, "offer")
            tracks = dict(offer["tracks"])
            reply = sdp.subscriber_answer(offer["sdp"], ufrag, pwd, fingerprint,
                                          accept_extensions=meeting)
            await ws.send({"type": "answer", "sdp": reply})
            if sub_leg is None and tracks:
                sub_leg = await start_leg(nursery, offer["sdp"], ufrag, pwd, cert, rng)
                out.legs.append(sub_leg)
                if not meeting:
                    out.receivers.append(Receiver(sub_leg.sock, None, control_of(sub_leg),
                                                  expected))
                    continue
                ids = sdp.negotiated_extensions(offer["sdp"], "video")
                address = sub_leg.transport.remote_address
                feedback = ReceiverFeedback(ssrc=rng.randrange(1, 2**32), rng=rng,
                                            transport_cc_id=ids.transport_cc)
                streams = tuple(s for i in expected for s in (2 * i, 2 * i + 1))
                out.meeting_receivers.append(MeetingReceiver(
                    sub_leg.sock, None, control_of(sub_leg), streams, feedback,
                    (address[0], address[1])))
    return index


async def _expect(ws: SignalingClient, kind: str) -> dict[str, Any]:
    try:
        return await ws.recv_type(kind, timeout=20)
    except SignalingClosed as exc:
        raise SetupError(f"the router closed signaling while we waited for {kind!r}: {exc}") \
            from None


def bind_srtp(participants: SfuParticipants) -> None:
    """Point every sender and receiver at its leg's SRTP context (keys exist once connected)."""
    by_sock = {leg.sock: leg for leg in participants.legs}
    for s in participants.senders:
        srtp = by_sock[s.sock].transport.srtp
        assert srtp is not None
        s.protect = srtp.protect_rtp
    for r in participants.receivers:
        srtp = by_sock[r.sock].transport.srtp
        assert srtp is not None
        r.unprotect = srtp.unprotect_rtp
    meeting: list[MeetingSender | MeetingReceiver] = [*participants.meeting_senders,
                                                      *participants.meeting_receivers]
    for m in meeting:
        m.srtp = by_sock[m.sock].transport.srtp
        assert m.srtp is not None


__all__ = ["Leg", "SetupError", "SfuParticipants", "bind_srtp", "control_of",
           "finish_connecting", "setup", "setup_error_in", "start_leg", "udp_socket"]
