"""A synthetic meeting participant that rejoins by itself, as the meeting page does.

It joins through the front door (HTTPS, speaking for a client address via ``X-Forwarded-For``
from the trusted ops host), opens the router's WebSocket signaling, publishes one Opus track
over a real ICE-lite/DTLS-SRTP connection (the house client transport), sends audio every
20 ms and a chat line naming its room every second (so a line reaching another room shows).
When signaling breaks (the router died, or sent the participant away because the room lives
elsewhere), it joins again with its previous token (``rejoin``, so it keeps its participant
id) and reconnects wherever the front door sends it, retrying until it is back.

Every step is recorded as a :class:`Event` with the Trio clock, so the scenario can tell how
long each participant was out, which routers it used and whether each was allowed for it.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import trio

from benchmarks.media.streams import AudioStream
from benchmarks.sfu import sdp
from router.signaling.client import SignalingClient
from router.transport import ClientTransport, DtlsCertificate, DtlsConnected, TransportClosed
from router.transport.ice_lite import generate_password, generate_ufrag
from router.transport.udp_driver import UdpDriver

CHAT_PERIOD = 1.0
RETRY_PAUSE = 0.2
"""Seconds between attempts when a join or a connection fails (the page waits about this)."""


class JoinFailed(Exception):
    """The front door answered an error (``status``; 0: no answer at all)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.retry_after = retry_after


async def join(frontdoor: str, room: str, client_ip: str, context: ssl.SSLContext,
               body: dict[str, Any] | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """One ``POST /v1/rooms/{room}/join``; the 200 answer, or :class:`JoinFailed`."""
    parts = urlsplit(frontdoor)
    host, port = parts.hostname or "", parts.port or 443
    payload = json.dumps(body or {}).encode()
    request = (f"POST /v1/rooms/{room}/join HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"X-Forwarded-For: {client_ip}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode() + payload
    raw = b""
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=context)
            try:
                await stream.send_all(request)
                while chunk := await stream.receive_some(65536):
                    raw += chunk
            finally:
                with contextlib.suppress(trio.BrokenResourceError, OSError):
                    await stream.aclose()
    except (OSError, trio.TooSlowError, trio.BrokenResourceError, ssl.SSLError) as exc:
        if not raw:
            raise JoinFailed(0, f"no answer: {exc!r}") from None
    head, _, content = raw.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise JoinFailed(0, "malformed answer") from None
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if "chunked" in headers.get("transfer-encoding", ""):
        content = _dechunk(content)
    if status != 200:
        retry = headers.get("retry-after")
        raise JoinFailed(status, content.decode(errors="replace")[:200],
                         float(retry) if retry and retry.replace(".", "").isdigit() else None)
    answer: dict[str, Any] = json.loads(content)
    return answer


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    kind: str
    """``assigned`` (front door answer), ``in`` (joined and media connected), ``out``
    (signaling lost), ``error`` (an attempt failed)."""
    router: str = ""
    jurisdiction: str = ""
    detail: str = ""


@dataclass
class Participant:
    """One participant; run :meth:`run` in a nursery, cancel it to leave."""

    name: str
    room: str
    client_ip: str
    frontdoor: str
    tls: ssl.SSLContext
    certificate: DtlsCertificate
    seed: int
    events: list[Event] = field(default_factory=list)
    router: str = ""
    """The router it is connected to now ('' while out)."""
    connected: trio.Event = field(default_factory=trio.Event)
    token: str | None = None
    chat_sent: int = 0
    chat_received: int = 0
    chat_wrong_room: int = 0
    """Chat lines received that were sent in another room (must stay 0)."""

    def note(self, kind: str, router: str = "", jurisdiction: str = "", detail: str = "") -> None:
        self.events.append(Event(trio.current_time(), kind, router, jurisdiction, detail))

    async def run(self) -> None:
        while True:
            try:
                await self._session()
            except Exception as exc:  # every failure means: try again
                self.note("error", detail=repr(exc)[:200])
            if self.router:
                self.note("out", self.router)
                self.router = ""
            await trio.sleep(RETRY_PAUSE)

    async def _session(self) -> None:
        body: dict[str, Any] = {"name": self.name}
        if self.token is not None:
            body["rejoin"] = self.token
        try:
            answer = await join(self.frontdoor, self.room, self.client_ip, self.tls, body)
        except JoinFailed as exc:
            if exc.status == 400 and self.token is not None:
                self.token = None  # the rejoin was refused: join as new
            if exc.retry_after:
                await trio.sleep(min(exc.retry_after, 1.0))
            raise
        router = answer["router"]
        self.note("assigned", router["node"], router.get("jurisdiction", ""))
        self.token = answer["token"]
        ws = await SignalingClient.connect(router["signaling_url"], ssl_context=self.tls)
        try:
            await ws.send({"type": "join", "token": answer["token"]})
            await ws.recv_type("joined", timeout=10)
            rng = random.Random(self.seed)
            ssrc = rng.randrange(1, 2**32)
            ufrag, pwd = generate_ufrag(), generate_password()
            await ws.send({"type": "publish", "sdp": sdp.publisher_offer(
                ufrag, pwd, str(self.certificate.fingerprint), ssrc)})
            offer_answer = await ws.recv_type("answer", timeout=10)
            async with trio.open_nursery() as nursery:
                transport, sock = await _connect_media(nursery, offer_answer["sdp"], ufrag, pwd,
                                                       self.certificate, rng)
                self.router = router["node"]
                self.note("in", self.router, router.get("jurisdiction", ""))
                self.connected.set()
                nursery.start_soon(_send_audio, transport, sock, ssrc, rng)
                nursery.start_soon(self._chat, ws)
                await self._until_closed(ws)
                nursery.cancel_scope.cancel()
            sock.close()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await ws.close()


    async def _chat(self, ws: SignalingClient) -> None:
        """A chat line every second naming this room: whoever receives it can tell whether
        it reached the right room (chat is never stored, only relayed)."""
        with contextlib.suppress(Exception):
            while True:
                self.chat_sent += 1
                await ws.send({"type": "chat", "text": f"{self.room}|{self.name}|"
                                                      f"{self.chat_sent}"})
                await trio.sleep(CHAT_PERIOD)

    async def _until_closed(self, ws: SignalingClient) -> None:
        """Count chat until the router closes signaling or the connection breaks."""
        with contextlib.suppress(Exception):
            while True:
                message = await ws.recv(timeout=3600)
                if message.get("type") == "chat":
                    self.chat_received += 1
                    if str(message.get("text", "")).split("|")[0] != self.room:
                        self.chat_wrong_room += 1


async def _connect_media(nursery: trio.Nursery, remote_sdp: str, ufrag: str, pwd: str,
                         cert: DtlsCertificate, rng: random.Random
                         ) -> tuple[ClientTransport, socket.socket]:
    r_ufrag, r_pwd, r_fp, addr = sdp.router_transport(remote_sdp)
    now = trio.current_time()
    transport = ClientTransport(
        remote_address=addr, remote_ufrag=r_ufrag, remote_password=r_pwd, remote_fingerprint=r_fp,
        random=rng.random, local_ufrag=ufrag, local_password=pwd, certificate=cert, now=now,
    )  # fmt: skip
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 0))
    sock.setblocking(False)
    done = trio.Event()
    failure: list[str] = []

    def on_event() -> None:
        while (event := transport.next_event()) is not None:
            if isinstance(event, DtlsConnected):
                done.set()
            elif isinstance(event, TransportClosed):
                failure.append(str(event.reason))
                done.set()

    transport.connect(now)
    nursery.start_soon(UdpDriver(sock, transport, on_event).run)
    with trio.fail_after(15):
        await done.wait()
    if failure:
        sock.close()
        raise ConnectionError(f"media connection failed: {failure[0]}")
    return transport, sock


async def _send_audio(transport: ClientTransport, sock: socket.socket, ssrc: int,
                      rng: random.Random) -> None:
    stream = AudioStream(stream=0, ssrc=ssrc, start=trio.current_time(), transport=None, rng=rng)
    srtp = transport.srtp
    assert srtp is not None
    address = transport.remote_address
    while True:
        for packet in stream.poll(trio.current_time()):
            protected = srtp.protect_rtp(bytes(packet.data))
            if protected is not None:
                with contextlib.suppress(OSError):
                    sock.sendto(protected, address)
        await trio.sleep_until(stream.next_due())


