"""The measuring participant pair of ``regio bench trunk``, run inside a namespace host.

``python -m benchmarks.trunk.client --etcd URL --pub SIGNALING --sub SIGNALING ...``: lists
both routers in the room's router set (§10; the bench plays placement), joins a publisher on
the first router and a subscriber on the second with real ICE/DTLS/SRTP, sends paced VP8-sized
RTP whose payload carries its number and send time, polls the first router's metrics for the
moment its flow to the second changes path, and prints one JSON object: what was sent and
received when, for the runner to turn into loss, switch time and latency, and every router's
trunk repair counters at the end (``--scrape NODE=URL``).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import ssl
import struct
import sys
import time
import urllib.request
from typing import Any

import trio

from benchmarks.sfu.sdp import publisher_offer, router_transport, subscriber_answer
from control import schema
from control.etcd import EtcdClient, EtcdConfig
from control.schema import KeySet, RoomRouterRecord
from control.secretbox import load_box
from control.tokens import JoinClaims, sign_token
from router.signaling.client import SignalingClient
from router.transport import ClientTransport, DtlsCertificate, DtlsConnected, RtpReceived
from router.transport.ice_lite import generate_password, generate_ufrag
from router.transport.udp_driver import client_driver

CERT = DtlsCertificate.generate()
VIDEO_SSRC = 2222
_STAMP = struct.Struct("!Qq")


async def _token(client: EtcdClient, room: str, participant: str, router: str) -> str:
    kv = await client.get(schema.secrets_key("token"))
    if kv is None:
        raise RuntimeError("no join-token key in etcd")
    plain = load_box(client.config.secrets_key).open(kv.key, kv.value)
    key = KeySet.decode(plain).current_key
    now = int(time.time())
    claims = JoinClaims(kid=key.kid, room=room, participant=participant, router=router,
                        region="bench", policy="nearest", mode="sfu", expires_at=now + 3600,
                        issued_at=now)
    return sign_token(claims, key)


class Leg:
    def __init__(self, nursery: trio.Nursery, bind: str, sdp: str, ufrag: str, pwd: str,
                 on_rtp: Any = None) -> None:
        r_ufrag, r_pwd, r_fp, addr = router_transport(sdp)
        now = trio.current_time()
        self.connected = trio.Event()
        self.transport = ClientTransport(
            remote_address=addr, remote_ufrag=r_ufrag, remote_password=r_pwd,
            remote_fingerprint=r_fp, random=random.random, local_ufrag=ufrag,
            local_password=pwd, certificate=CERT, now=now)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.bind((bind, 0))
        self.on_rtp = on_rtp

        def on_event(event: object) -> None:
            if isinstance(event, DtlsConnected):
                self.connected.set()
            elif isinstance(event, RtpReceived) and self.on_rtp is not None:
                self.on_rtp(event.packet)

        self.driver = client_driver(sock, self.transport, on_event)
        self.transport.connect(now)
        nursery.start_soon(self.driver.run)


def _stamp_of(packet: bytes) -> tuple[int, int] | None:
    start = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        start += 4 + 4 * int.from_bytes(packet[start + 2:start + 4], "big")
    if len(packet) < start + _STAMP.size:
        return None
    number, sent_ns = _STAMP.unpack_from(packet, start)
    return number, sent_ns


def _path_state(metrics_url: str, peer: str) -> tuple[float, float]:
    with urllib.request.urlopen(metrics_url, timeout=2) as response:
        text = response.read().decode()
    values = {}
    for name in ("regio_trunk_path_relayed", "regio_trunk_path_dual"):
        match = re.search(rf'^{name}{{peer="{re.escape(peer)}"[^}}]*}} (\S+)$', text, re.M)
        values[name] = float(match.group(1)) if match else 0.0
    return values["regio_trunk_path_relayed"], values["regio_trunk_path_dual"]


REPAIR_COUNTERS = ("regio_trunk_retransmits", "regio_trunk_nack_misses",
                   "regio_trunk_nacks_sent")


def _repair_counters(metrics_url: str) -> dict[str, dict[str, float]]:
    """``counter -> peer -> value`` of a router's hop-by-hop repair counters."""
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    out: dict[str, dict[str, float]] = {name: {} for name in REPAIR_COUNTERS}
    for name in REPAIR_COUNTERS:
        for peer, value in re.findall(rf'^{name}(?:_total)?{{peer="([^"]+)"[^}}]*}} (\S+)$',
                                      text, re.M):
            out[name][peer] = float(value)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    config = EtcdConfig.from_urls(args.etcd, timeout=3.0)
    received: list[tuple[int, int, int]] = []  # (number, sent_ns, received_ns)
    switches: list[tuple[int, float, float]] = []  # (time_ns, relayed, dual)
    async with EtcdClient(config) as client, trio.open_nursery() as nursery:
        for router in (args.pub_router, args.sub_router):
            record = RoomRouterRecord(args.room, router, "bench", "EEA", time.time())
            await client.put(schema.room_router_key(args.room, router), record.encode())
        tls = ssl.create_default_context(cafile=args.ca)
        pub = await SignalingClient.connect(args.pub, ssl_context=tls)
        sub = await SignalingClient.connect(args.sub, ssl_context=tls)
        await pub.send({"type": "join",
                        "token": await _token(client, args.room, "pub", args.pub_router)})
        await pub.recv_type("joined")
        await sub.send({"type": "join",
                        "token": await _token(client, args.room, "sub", args.sub_router)})
        await sub.recv_type("joined")
        ufrag, pwd = generate_ufrag(), generate_password()
        await pub.send({"type": "publish", "sdp": publisher_offer(
            ufrag, pwd, str(CERT.fingerprint), 1111, VIDEO_SSRC)})
        answer = await pub.recv_type("answer", 20)
        publisher = Leg(nursery, args.bind, answer["sdp"], ufrag, pwd)

        def on_rtp(packet: bytes) -> None:
            stamp = _stamp_of(packet)
            if stamp is not None and packet[1] & 0x7F == 96:
                received.append((stamp[0], stamp[1], time.monotonic_ns()))

        s_ufrag, s_pwd = generate_ufrag(), generate_password()
        subscriber: Leg | None = None
        tracks: dict[str, str] = {}
        with trio.fail_after(30):
            while len(tracks) < 2:
                offer = await sub.recv_type("offer", 30)
                tracks.update(offer["tracks"])
                await sub.send({"type": "answer", "sdp": subscriber_answer(
                    offer["sdp"], s_ufrag, s_pwd, str(CERT.fingerprint))})
                if subscriber is None and offer["tracks"]:
                    subscriber = Leg(nursery, args.bind, offer["sdp"], s_ufrag, s_pwd, on_rtp)
            assert subscriber is not None
            await publisher.connected.wait()
            await subscriber.connected.wait()

        async def poll_paths() -> None:
            while True:
                try:
                    relayed, dual = await trio.to_thread.run_sync(
                        _path_state, args.metrics, args.sub_router)
                except OSError:
                    relayed = dual = -1.0
                switches.append((time.monotonic_ns(), relayed, dual))
                await trio.sleep(0.1)

        nursery.start_soon(poll_paths)
        start_ns = time.monotonic_ns()
        print(json.dumps({"event": "sending", "start_ns": start_ns}), flush=True)
        interval = 1.0 / args.pps
        padding = b"\x00" * max(0, args.size - _STAMP.size)
        sent = 0
        end = start_ns + int(args.seconds * 1e9)
        while True:
            now_ns = time.monotonic_ns()
            if now_ns >= end:
                break
            due = min(int((now_ns - start_ns) / 1e9 / interval) + 1, 10_000_000)
            while sent < due:
                payload = _STAMP.pack(sent, time.monotonic_ns()) + padding
                header = struct.pack("!BBHII", 0x80, 96, sent & 0xFFFF, (sent * 3000) & 0xFFFFFFFF,
                                     VIDEO_SSRC)
                publisher.transport.send_rtp(header + payload)
                sent += 1
            publisher.driver.notify()
            await trio.sleep(0.005)
        await trio.sleep(args.drain)
        repairs = {}
        for item in args.scrape:
            node, _, url = item.partition("=")
            try:
                repairs[node] = await trio.to_thread.run_sync(_repair_counters, url)
            except OSError:
                repairs[node] = {}
        nursery.cancel_scope.cancel()
    return {"start_ns": start_ns, "sent": sent, "interval": interval, "received": received,
            "paths": switches, "repairs": repairs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.trunk.client")
    parser.add_argument("--etcd", required=True)
    parser.add_argument("--pub", required=True, help="publisher router's signaling URL")
    parser.add_argument("--sub", required=True, help="subscriber router's signaling URL")
    parser.add_argument("--pub-router", required=True)
    parser.add_argument("--sub-router", required=True)
    parser.add_argument("--metrics", required=True, help="publisher router's /metrics URL")
    parser.add_argument("--room", default="bench")
    parser.add_argument("--bind", required=True, help="this host's address")
    parser.add_argument("--ca", required=True, help="CA of the routers' wss certificates")
    parser.add_argument("--pps", type=float, default=200.0)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--drain", type=float, default=1.5)
    parser.add_argument("--scrape", action="append", default=[], metavar="NODE=URL",
                        help="a router's /metrics to read the trunk repair counters of")
    args = parser.parse_args(argv)
    result = trio.run(run, args)
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
