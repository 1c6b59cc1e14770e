"""A synthetic WebRTC client for router tests: signaling (WebSocket) + ClientTransport media.

The publisher offer is written like Chromium's (BUNDLE, rtcp-mux, mid extension, signalled
SSRCs, actpass); the subscriber answers the router's offers with recvonly sections and
``setup:active``. ICE, DTLS and SRTP are the real ``router.transport`` client cores over a real
loopback UDP socket, driven by ``client_driver``.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from benchmarks.sfu.sdp import publisher_offer, subscriber_answer
from benchmarks.sfu.sdp import router_transport as transport_of
from control.schema import SecretKey
from control.tokens import JoinClaims, sign_token
from router.signaling.client import SignalingClient
from router.transport import (
    ClientTransport,
    DtlsCertificate,
    DtlsConnected,
    RtcpReceived,
    RtpReceived,
    TransportClosed,
    TransportEvent,
)
from router.transport.ice_lite import generate_password, generate_ufrag
from router.transport.udp_driver import UdpDriver, client_driver

CERT = DtlsCertificate.generate()
KEY = SecretKey("k1", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", 0.0, None)


def token(room: str, participant: str, *, router: str, mode: str = "sfu", ttl: float = 300,
          key: SecretKey = KEY, name: str | None = None) -> str:
    now = int(time.time())
    claims = JoinClaims(kid=key.kid, room=room, participant=participant, router=router,
                        region="eu-west", policy="eea", mode=mode, expires_at=int(now + ttl),
                        issued_at=now, name=name)
    return sign_token(claims, key)


def rtp(seq: int, ssrc: int, pt: int, payload: bytes, ts: int) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Leg:
    """One client-side media connection (publisher or subscriber)."""

    transport: ClientTransport
    driver: UdpDriver
    connected: trio.Event = field(default_factory=trio.Event)
    closed: trio.Event = field(default_factory=trio.Event)
    received: list[bytes] = field(default_factory=list)
    #: Decrypted RTCP compounds from the router (feedback to a publisher, SR to a subscriber).
    rtcp: list[bytes] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    async def run(self) -> None:
        try:
            with self.scope:
                await self.driver.run()
        finally:
            self.driver.sock.close()

    def on_event(self, event: TransportEvent) -> None:
        if isinstance(event, DtlsConnected):
            self.connected.set()
        elif isinstance(event, RtpReceived):
            self.received.append(event.packet)
            self.changed.set()
            self.changed = trio.Event()
        elif isinstance(event, RtcpReceived):
            self.rtcp.append(event.packet)
        elif isinstance(event, TransportClosed):
            self.closed.set()


class SynthClient:
    """One participant: a signaling session plus publisher/subscriber media legs."""

    def __init__(self, nursery: trio.Nursery, signaling: SignalingClient, seed: int) -> None:
        self.nursery = nursery
        self.ws = signaling
        self.rng = random.Random(seed)
        self.publisher: Leg | None = None
        self.subscriber: Leg | None = None
        self.sub_ufrag = generate_ufrag()
        self.sub_pwd = generate_password()
        self.tracks: dict[str, str] = {}
        self.joined: dict[str, Any] = {}

    @classmethod
    async def join(cls, nursery: trio.Nursery, url: str, tok: str, seed: int = 0,
                   **extra: Any) -> SynthClient:
        ws = await SignalingClient.connect(url)
        client = cls(nursery, ws, seed)
        await ws.send({"type": "join", "token": tok, **extra})
        client.joined = await ws.recv_type("joined")
        return client

    def _leg(self, ufrag: str, pwd: str, fingerprint: str, addr: tuple[str, int],
             local_ufrag: str, local_pwd: str) -> Leg:
        now = trio.current_time()
        transport = ClientTransport(
            remote_address=addr, remote_ufrag=ufrag, remote_password=pwd,
            remote_fingerprint=fingerprint, random=self.rng.random, local_ufrag=local_ufrag,
            local_password=local_pwd, certificate=CERT, now=now,
        )
        holder: list[Leg] = []
        driver = client_driver(_udp(), transport, lambda e: holder[0].on_event(e))
        leg = Leg(transport, driver)
        holder.append(leg)
        transport.connect(now)
        self.nursery.start_soon(leg.run)
        return leg

    async def publish(self, audio_ssrc: int, video_ssrc: int | None = None,
                      fingerprint: str | None = None, *,
                      chromium_extensions: bool = False) -> dict[str, Any]:
        """Publish; ``chromium_extensions`` offers Chromium's header extensions and
        transport-cc feedback (benchmarks.media.extensions: transport-wide-cc is id 3)."""
        ufrag, pwd = generate_ufrag(), generate_password()
        offer = publisher_offer(ufrag, pwd, fingerprint or str(CERT.fingerprint), audio_ssrc,
                                video_ssrc, chromium_extensions=chromium_extensions)
        await self.ws.send({"type": "publish", "sdp": offer})
        answer = await self.ws.recv_type("answer")
        r_ufrag, r_pwd, r_fp, addr = transport_of(answer["sdp"])
        self.publisher = self._leg(r_ufrag, r_pwd, r_fp, addr, ufrag, pwd)
        return answer

    async def answer_offer(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for the router's next subscriber offer and answer it."""
        offer = await self.ws.recv_type("offer", timeout)
        self.tracks.update(offer["tracks"])
        answer = subscriber_answer(offer["sdp"], self.sub_ufrag, self.sub_pwd,
                                   str(CERT.fingerprint))
        await self.ws.send({"type": "answer", "sdp": answer})
        if self.subscriber is None and offer["tracks"]:
            r_ufrag, r_pwd, r_fp, addr = transport_of(offer["sdp"])
            self.subscriber = self._leg(r_ufrag, r_pwd, r_fp, addr, self.sub_ufrag, self.sub_pwd)
        return offer

    def send_rtp(self, packet: bytes) -> bool:
        assert self.publisher is not None
        ok = self.publisher.transport.send_rtp(packet)
        self.publisher.driver.notify()
        return ok

    async def leave(self) -> None:
        await self.ws.send({"type": "leave"})
        await self.close()

    async def close(self) -> None:
        for leg in (self.publisher, self.subscriber):
            if leg is not None:
                leg.scope.cancel()
        await self.ws.close()
