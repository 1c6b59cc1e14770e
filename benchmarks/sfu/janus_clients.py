"""The ``--load meeting`` participants through Janus VideoRoom (real ICE, DTLS, SRTP).

Per bench room a VideoRoom room is created (Opus + VP8, transport-wide CC and audio level on,
as in Janus's defaults); publishers join and publish first (Janus answers ``setup:active``, so
our side is the DTLS server), then each subscriber joins with every publisher of its room as
one multistream subscription and answers Janus's offer. Offers and answers carry our one host
candidate (no trickle). libnice sends its own connectivity checks even in ICE-lite mode and
nominates only once they are answered, so :class:`AnsweringClientTransport` answers inbound
binding requests. The HTTP API is blocking and runs in a thread while earlier legs handshake.
"""

from __future__ import annotations

import random
from ipaddress import ip_address

import trio

from benchmarks.media import ReceiverFeedback
from benchmarks.sfu import sdp
from benchmarks.sfu.janus_api import JanusError, JanusSession
from benchmarks.sfu.meeting import MeetingReceiver, MeetingSender
from benchmarks.sfu.sfu_clients import (
    SetupError,
    SfuParticipants,
    control_of,
    finish_connecting,
    setup_error_in,
    start_leg,
    udp_socket,
)
from router.transport import ClientTransport, DtlsCertificate
from router.transport.dtls import DtlsRole
from router.transport.events import Address
from router.transport.ice_lite import generate_password, generate_ufrag
from turn.stun import (
    MessageClass,
    Method,
    StunDecodeError,
    StunEncodeError,
    XorMappedAddress,
    parse_message,
    short_term_key,
)

#: First VideoRoom room number the bench creates (room N of the bench is FIRST_ROOM + N).
FIRST_ROOM = 4000


class AnsweringClientTransport(ClientTransport):
    """A controlling client that also answers the peer's binding requests (full-ICE peers and
    libnice's lite mode send them)."""

    def _receive_stun(self, data: bytes, addr: Address, now: float) -> None:
        try:
            message = parse_message(data)
        except StunDecodeError:
            self.ice.stats.malformed += 1
            return
        if message.method == Method.BINDING and message.cls is MessageClass.REQUEST:
            key = short_term_key(self.local_password)
            if addr == self.remote_address and message.integrity_ok(key):
                try:
                    reply = message.response(XorMappedAddress(ip_address(addr[0]), addr[1]))
                    self._out.append((reply.encode(integrity_key=key, fingerprint=True), addr))
                except (StunEncodeError, ValueError):
                    self.ice.stats.unexpected += 1
            return
        super()._receive_stun(data, addr, now)


async def setup(target: str, rooms: list[str], publishers: int, subscribers: int, *,
                seed: int, timeout: float = 60.0) -> SfuParticipants:
    """``target`` is ``URL|ADDRESS`` (Janus's HTTP API, the address to bind, see
    :mod:`benchmarks.sfu.janus_proc`)."""
    url, _, address = target.partition("|")
    out = SfuParticipants()
    cert = DtlsCertificate.generate()
    fingerprint = str(cert.fingerprint)
    rng = random.Random(seed)
    try:
        session = await trio.to_thread.run_sync(JanusSession, url)
        with trio.fail_after(timeout):
            async with trio.open_nursery() as nursery:
                index = 0
                for room in rooms:
                    index = await _setup_room(nursery, session, out, room, address, publishers,
                                              subscribers, cert, fingerprint, rng, index)
                await finish_connecting(out.legs)
    except JanusError as exc:
        raise SetupError(str(exc)) from None
    except BaseExceptionGroup as group:  # the nursery wraps what its body raised
        raise setup_error_in(group, JanusError) from None
    except trio.TooSlowError:
        raise SetupError(f"participants did not connect to Janus within {timeout:g} s") \
            from None
    return out


async def _setup_room(nursery: trio.Nursery, session: JanusSession, out: SfuParticipants,
                      room: str, address: str, publishers: int, subscribers: int,
                      cert: DtlsCertificate, fingerprint: str, rng: random.Random,
                      index: int) -> int:
    number = FIRST_ROOM + int(room.removeprefix("room"))
    control = await trio.to_thread.run_sync(session.attach)
    await trio.to_thread.run_sync(session.request, control, {
        "request": "create", "room": number, "publishers": max(publishers, 1),
        "audiocodec": "opus", "videocodec": "vp8", "bitrate": 0, "fir_freq": 10,
        "transport_wide_cc_ext": True, "audiolevel_ext": True})
    first = index
    feeds = []
    handles = []
    for p in range(publishers):
        handle = await trio.to_thread.run_sync(session.attach)
        joined = await trio.to_thread.run_sync(session.request, handle, {
            "request": "join", "ptype": "publisher", "room": number, "display": f"p{p}"})
        feeds.append(int(joined["plugindata"]["data"]["id"]))
        handles.append(handle)
        sock = udp_socket(address)
        ufrag, pwd = generate_ufrag(), generate_password()
        audio_ssrc, video_ssrc = rng.randrange(1, 2**32), rng.randrange(1, 2**32 - 1)
        offer = sdp.with_candidate(
            sdp.publisher_offer(ufrag, pwd, fingerprint, audio_ssrc, video_ssrc,
                                chromium_extensions=True), sock.getsockname())
        answer = await trio.to_thread.run_sync(
            session.request, handle, {"request": "publish", "audio": True, "video": True},
            {"type": "offer", "sdp": offer, "trickle": False})
        answer_sdp = str(answer["jsep"]["sdp"])
        role = DtlsRole.SERVER if "a=setup:active" in answer_sdp else DtlsRole.CLIENT
        leg = await start_leg(nursery, answer_sdp, ufrag, pwd, cert, rng, sock=sock,
                              transport_class=AnsweringClientTransport, dtls_role=role,
                              remote=sdp.server_transport(answer_sdp))
        out.legs.append(leg)
        dest = leg.transport.remote_address
        out.meeting_senders.append(MeetingSender(
            sock, (dest[0], dest[1]), None, control_of(leg), [audio_ssrc, video_ssrc],
            2 * index, sdp.negotiated_extensions(answer_sdp, "audio"),
            sdp.negotiated_extensions(answer_sdp, "video")))
        index += 1
    streams = tuple(s for i in range(first, index) for s in (2 * i, 2 * i + 1))
    for leg, handle in zip(out.legs[-publishers:], handles, strict=True):
        await leg.connected.wait()
        if leg.failed:
            raise SetupError(f"a publisher's connection to Janus failed: {leg.failed}")
        # Our end of DTLS may finish before Janus's: its feed is listed only after webrtcup.
        await trio.to_thread.run_sync(session.wait_for, handle, "webrtcup")
    for _ in range(subscribers):
        handle = await trio.to_thread.run_sync(session.attach)
        attached = await trio.to_thread.run_sync(session.request, handle, {
            "request": "join", "ptype": "subscriber", "room": number,
            "streams": [{"feed": feed} for feed in feeds]})
        offer_sdp = str(attached["jsep"]["sdp"])
        sock = udp_socket(address)
        ufrag, pwd = generate_ufrag(), generate_password()
        reply = sdp.with_candidate(
            sdp.subscriber_answer(offer_sdp, ufrag, pwd, fingerprint, accept_extensions=True),
            sock.getsockname())
        await trio.to_thread.run_sync(session.request, handle, {"request": "start"},
                                      {"type": "answer", "sdp": reply})
        leg = await start_leg(nursery, offer_sdp, ufrag, pwd, cert, rng, sock=sock,
                              transport_class=AnsweringClientTransport,
                              remote=sdp.server_transport(offer_sdp))
        out.legs.append(leg)
        ids = sdp.negotiated_extensions(offer_sdp, "video")
        feedback = ReceiverFeedback(ssrc=rng.randrange(1, 2**32), rng=rng,
                                    transport_cc_id=ids.transport_cc)
        dest = leg.transport.remote_address
        out.meeting_receivers.append(MeetingReceiver(
            sock, None, control_of(leg), streams, feedback, (dest[0], dest[1]),
            sdp.rtx_payload_types(offer_sdp)))
    return index


__all__ = ["FIRST_ROOM", "AnsweringClientTransport", "setup"]
