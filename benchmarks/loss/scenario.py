"""One loss-bench case: a router process, a publisher on a clean leg, subscribers behind
impairment proxies, all with real ICE/DTLS/SRTP (Trio, one process for the clients).

The publisher sends :mod:`benchmarks.media` VP8 video (30 fps, ~1,100-byte packets, keyframes
every 2 s and on PLI) and Opus-sized audio, every payload stamped with its stream, number and
send time, and answers NACKs from a short history. Each subscriber decrypts, records the first
arrival of every (stream, number), answers with Chromium-like RTCP (RR, NACK on gaps, PLI,
transport-cc feedback; :class:`benchmarks.media.ReceiverFeedback`), and notes when each gap
was seen and when it was filled: the recovery delay.
"""

from __future__ import annotations

import random
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import trio

from benchmarks.impair import ImpairmentProxy, ImpairmentSettings
from benchmarks.loss import sdp
from benchmarks.loss.layers import Schedule, simulcast_figures
from benchmarks.media import (
    CHROMIUM_SIMULCAST,
    AudioStream,
    ReceiverFeedback,
    TransportSequence,
    VideoStream,
)
from benchmarks.media.stamp import read_tail, write_tail
from benchmarks.procstat import process_tree_cpu_seconds
from benchmarks.sfu.router_proc import RouterProcess
from benchmarks.sfu.sfu_clients import udp_socket
from benchmarks.sfu.tokens import join_token
from control.top import parse_metrics
from router.rtp import GenericNack, Pli, parse_rtcp_compound
from router.signaling.client import SignalingClient
from router.transport import (
    ClientTransport,
    DtlsCertificate,
    DtlsConnected,
    RtcpReceived,
    RtpReceived,
    TransportClosed,
)
from router.transport.ice_lite import generate_password, generate_ufrag
from router.transport.udp_driver import UdpDriver

DEADLINE_NS = 300_000_000
"""A packet not delivered within 300 ms of its send time counts as lost (residual loss)."""
WARMUP = 1.0
VIDEO_PT = 96
RTX_PT = 97
"""The router's payload types towards subscribers (router.sdp DEFAULT_CAPABILITIES)."""
TAIL_GUARD = 0.6


@dataclass
class Client:
    """One media connection, its driver, and what arrived on it."""

    transport: ClientTransport
    driver: UdpDriver
    connected: trio.Event = field(default_factory=trio.Event)
    failed: str | None = None
    arrivals: dict[tuple[int, int], int] = field(default_factory=dict)
    duplicates: int = 0
    received: int = 0
    feedback: ReceiverFeedback | None = None
    gaps: dict[tuple[int, int], int] = field(default_factory=dict)
    highest: dict[int, int] = field(default_factory=dict)
    recovery_ns: list[int] = field(default_factory=list)
    nacks_sent: int = 0
    history: dict[tuple[int, int], bytes] = field(default_factory=dict)
    video: VideoStream | None = None
    videos: list[VideoStream] = field(default_factory=list)
    retransmitted: int = 0
    video_ssrc: int | None = None
    rtx_received: int = 0


def _unwrap_rtx(client: Client, packet: bytes) -> bytes | None:
    """An RFC 4588 repair as the original packet (None for padding-only probes)."""
    hl = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        hl += 4 + 4 * ((packet[hl + 2] << 8) | packet[hl + 3])
    end = len(packet) - (packet[-1] if packet[0] & 0x20 else 0)
    if end - hl < 2 + 16 or client.video_ssrc is None:
        return None
    header = bytearray(packet[:hl])
    header[0] &= ~0x20 & 0xFF
    header[1] = (header[1] & 0x80) | VIDEO_PT
    header[2:4] = packet[hl : hl + 2]
    header[8:12] = client.video_ssrc.to_bytes(4, "big")
    return bytes(header) + packet[hl + 2 : end]


def _on_subscriber_rtp(client: Client, packet: bytes) -> None:
    now_ns = time.monotonic_ns()
    pt = packet[1] & 0x7F
    if pt == RTX_PT:
        client.rtx_received += 1
        unwrapped = _unwrap_rtx(client, packet)
        if unwrapped is None:
            return
        packet = unwrapped
    elif pt == VIDEO_PT and client.video_ssrc is None:
        client.video_ssrc = int.from_bytes(packet[8:12], "big")
    try:
        stream, number, _send = read_tail(packet)
    except Exception:
        return
    key = (stream, number)
    client.received += 1
    if client.feedback is not None:
        client.feedback.on_rtp(trio.current_time(), packet)
    if key in client.arrivals:
        client.duplicates += 1
        return
    client.arrivals[key] = now_ns
    seq = (packet[2] << 8) | packet[3]
    ssrc = int.from_bytes(packet[8:12], "big")
    hi = client.highest.get(ssrc)
    if hi is None:
        client.highest[ssrc] = seq + (1 << 16)
        return
    ext = hi + ((seq - hi + 0x8000) & 0xFFFF) - 0x8000
    if ext > hi:
        for missing in range(hi + 1, min(ext, hi + 500)):
            client.gaps[(ssrc, missing)] = now_ns
        client.highest[ssrc] = ext
    else:
        seen = client.gaps.pop((ssrc, ext), None)
        if seen is not None:
            client.recovery_ns.append(now_ns - seen)


def _on_publisher_rtcp(client: Client, data: bytes) -> None:
    try:
        packets = parse_rtcp_compound(data)
    except Exception:
        return
    for packet in packets:
        if isinstance(packet, Pli):
            for video in client.videos:
                if video.ssrc == packet.media_ssrc or len(client.videos) == 1:
                    video.request_keyframe()
        elif isinstance(packet, GenericNack):
            for seq in packet.lost_seqs():
                original = client.history.get((packet.media_ssrc, seq))
                if original is not None:
                    client.retransmitted += 1
                    client.transport.send_rtp(original)


def _events(client: Client, subscriber: bool) -> None:
    transport = client.transport
    while (event := transport.next_event()) is not None:
        if isinstance(event, RtpReceived):
            if subscriber:
                _on_subscriber_rtp(client, event.packet)
        elif isinstance(event, RtcpReceived):
            if not subscriber:
                _on_publisher_rtcp(client, event.packet)
        elif isinstance(event, DtlsConnected):
            client.connected.set()
        elif isinstance(event, TransportClosed):
            client.failed = event.reason
            client.connected.set()


def _client(nursery: trio.Nursery, remote: str, address: tuple[str, int], ufrag: str, pwd: str,
            cert: DtlsCertificate, rng: random.Random, subscriber: bool) -> Client:
    r_ufrag, r_pwd, r_fp, _addr = _router_transport(remote)
    now = trio.current_time()
    transport = ClientTransport(
        remote_address=address, remote_ufrag=r_ufrag, remote_password=r_pwd,
        remote_fingerprint=r_fp, random=rng.random, local_ufrag=ufrag, local_password=pwd,
        certificate=cert, now=now,
    )  # fmt: skip
    holder: list[Client] = []
    driver = UdpDriver(udp_socket(), transport, lambda: _events(holder[0], subscriber))
    client = Client(transport, driver)
    holder.append(client)
    transport.connect(now)
    nursery.start_soon(driver.run)
    return client


def _router_transport(text: str) -> tuple[str, str, str, tuple[str, int]]:
    from benchmarks.sfu.sdp import router_transport

    return router_transport(text)


async def run_case(router: RouterProcess, settings: ImpairmentSettings, *, seconds: float,
                   subscribers: int, seed: int, video_bps: float = 1_200_000,
                   simulcast: bool = False) -> dict[str, Any]:
    """Run one case against ``router`` and return its figures. With ``simulcast`` the
    publisher sends three layers (:data:`CHROMIUM_SIMULCAST`) and the first subscriber's
    downlink is capped at :data:`CAP_KBPS` for the middle third of the run."""
    rng = random.Random(seed)
    cert = DtlsCertificate.generate()
    fingerprint = str(cert.fingerprint)
    room = f"loss-{seed}"
    signals: list[SignalingClient] = []
    proxies = [ImpairmentProxy(("127.0.0.1", 0), router.udp, settings, seed=seed + 7 * i)
               for i in range(subscribers)]  # fmt: skip
    async with trio.open_nursery() as nursery:
        for proxy in proxies:
            await nursery.start(proxy.run)
        subs: list[tuple[SignalingClient, str, str]] = []
        for i in range(subscribers):
            ws = await SignalingClient.connect(router.signaling_url)
            signals.append(ws)
            await ws.send({"type": "join", "token": join_token(room, f"sub{i}")})
            await ws.recv_type("joined")
            subs.append((ws, generate_ufrag(), generate_password()))
        ws = await SignalingClient.connect(router.signaling_url)
        signals.append(ws)
        await ws.send({"type": "join", "token": join_token(room, "pub")})
        await ws.recv_type("joined")
        ufrag, pwd = generate_ufrag(), generate_password()
        audio_ssrc, video_ssrc = rng.randrange(1, 1 << 31), rng.randrange(1 << 31, 1 << 32)
        rids = tuple(layer.rid for layer in CHROMIUM_SIMULCAST) if simulcast else ()
        await ws.send({"type": "publish", "sdp": sdp.publisher_offer(
            ufrag, pwd, fingerprint, audio_ssrc, video_ssrc, rids)})  # fmt: skip
        answer = await ws.recv_type("answer")
        publisher = _client(nursery, answer["sdp"], router.udp, ufrag, pwd, cert, rng, False)
        clients: list[Client] = []
        for i, (sws, sufrag, spwd) in enumerate(subs):
            tracks: dict[str, str] = {}
            client: Client | None = None
            while len(tracks) < 2:
                offer = await sws.recv_type("offer", 20)
                tracks = dict(offer["tracks"])
                text, twcc = sdp.subscriber_answer(offer["sdp"], sufrag, spwd, fingerprint)
                await sws.send({"type": "answer", "sdp": text})
                if client is None and tracks:
                    client = _client(nursery, offer["sdp"], proxies[i].address, sufrag, spwd,
                                     cert, rng, True)  # fmt: skip
                    client.feedback = ReceiverFeedback(
                        ssrc=rng.randrange(1, 1 << 32), rng=random.Random(seed + i),
                        transport_cc_id=twcc, nack_retries=12, pli_interval=None,
                    )  # fmt: skip
                    clients.append(client)
        with trio.fail_after(30):
            for c in (publisher, *clients):
                await c.connected.wait()
                if c.failed:
                    raise RuntimeError(f"a media connection failed: {c.failed}")
        before = await _downlink_counters(router)
        figures = await _measure(nursery, router, publisher, clients, proxies, seconds,
                                 video_bps, rng, (audio_ssrc, video_ssrc),
                                 simulcast)  # fmt: skip
        figures["router_downlink"] = _downlink_figures(before, await _downlink_counters(router))
        for s in signals:
            with trio.move_on_after(1):
                await s.send({"type": "leave"})
                await s.close()
        nursery.cancel_scope.cancel()
    return figures


async def _measure(nursery: trio.Nursery, router: RouterProcess, publisher: Client,
                   clients: list[Client], proxies: list[ImpairmentProxy], seconds: float,
                   video_bps: float, rng: random.Random, ssrcs: tuple[int, int],
                   simulcast: bool = False) -> dict[str, Any]:
    start = trio.current_time()
    transport_seq = TransportSequence()
    if simulcast:
        # Stream ids 1, 3, 4 (2 is audio); one SSRC per layer, numbered by the router's rid.
        videos = [VideoStream(stream=(1, 3, 4)[i], ssrc=ssrcs[1] - i, start=start,
                              bitrate_bps=layer.bitrate_bps, transport=transport_seq, rng=rng,
                              rid=layer.rid, width=layer.width, height=layer.height)
                  for i, layer in enumerate(CHROMIUM_SIMULCAST)]  # fmt: skip
    else:
        videos = [VideoStream(stream=1, ssrc=ssrcs[1], start=start,
                              bitrate_bps=video_bps, transport=transport_seq, rng=rng)]  # fmt: skip
    video = videos[0]
    audio = AudioStream(stream=2, ssrc=ssrcs[0], start=start,
                        transport=transport_seq, rng=rng)  # fmt: skip
    publisher.video = video
    publisher.videos = videos
    sent: dict[tuple[int, int], tuple[int, bool, int]] = {}
    frames = dict.fromkeys((v.stream for v in videos), 0)
    end = start + seconds
    schedule = Schedule(start, seconds) if simulcast else None
    sources: list[VideoStream | AudioStream] = [*videos, audio]

    async def feedback_loop() -> None:
        while True:
            now = trio.current_time()
            for c in clients:
                assert c.feedback is not None
                for packet in c.feedback.poll(now):
                    if packet[1] == 205 and packet[0] & 0x1F == 1:
                        c.nacks_sent += 1
                    c.transport.send_rtcp(packet)
                c.driver.notify()
            await trio.sleep(0.02)

    nursery.start_soon(feedback_loop)
    cpu0 = process_tree_cpu_seconds(router.pid)
    down0 = sum(p.down.stats.received for p in proxies)
    while True:
        now = trio.current_time()
        if now >= end:
            break
        if schedule is not None:
            schedule.apply(now, proxies[0])
        for stream in sources:
            for mp in stream.poll(now):
                send_ns = time.monotonic_ns()
                write_tail(mp.data, mp.stream, mp.number, send_ns)
                data = bytes(mp.data)
                if mp.kind == "video":
                    publisher.history[(stream.ssrc, (data[2] << 8) | data[3])] = data
                    if len(publisher.history) > 6144:
                        publisher.history.pop(next(iter(publisher.history)))
                in_window = start + WARMUP <= now <= end - TAIL_GUARD
                frame = frames.get(mp.stream, 0)
                if in_window:
                    sent[(mp.stream, mp.number)] = (send_ns, mp.kind == "video", frame)
                if mp.marker and mp.stream in frames:
                    frames[mp.stream] = frame + 1
                publisher.transport.send_rtp(data)
        publisher.driver.notify()
        due = min(audio.next_due(), end, *(v.next_due() for v in videos))
        if schedule is not None:
            due = min(due, schedule.next_due())
        await trio.sleep_until(due)
    await trio.sleep(0.5)  # the last repairs
    cpu = process_tree_cpu_seconds(router.pid) - cpu0
    forwarded = sum(p.down.stats.received for p in proxies) - down0
    if schedule is not None:
        return simulcast_figures(sent, clients, schedule, cpu, forwarded, publisher)
    return _figures(sent, clients, proxies, cpu, forwarded, publisher)


_DOWNLINK = ("regio_router_downlink_expected_packets", "regio_router_downlink_nacked_packets",
             "regio_router_downlink_lost_packets")


async def _downlink_counters(router: RouterProcess) -> tuple[float, float, float]:
    """The router's own downlink loss counters (expected, NACKed, lost), from its /metrics:
    what an operator's Prometheus sees, set beside what the subscribers measured."""
    if not router.metrics_url:
        return 0.0, 0.0, 0.0
    def fetch() -> str:
        with urllib.request.urlopen(router.metrics_url, timeout=5) as response:
            return bytes(response.read()).decode(errors="replace")

    text = await trio.to_thread.run_sync(fetch)
    values = parse_metrics(text)
    expected, nacked, lost = (values.get(name, 0.0) for name in _DOWNLINK)
    return expected, nacked, lost


def _downlink_figures(before: tuple[float, float, float], after: tuple[float, float, float]
                      ) -> dict[str, float]:
    expected, nacked, lost = (b - a for a, b in zip(before, after, strict=True))
    return {"expected": expected,
            "loss_before_recovery": round(nacked / expected, 5) if expected else 0.0,
            "loss_after_recovery": round(lost / expected, 5) if expected else 0.0}


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _figures(sent: dict[tuple[int, int], tuple[int, bool, int]], clients: list[Client],
             proxies: list[ImpairmentProxy], cpu: float, forwarded: int,
             publisher: Client) -> dict[str, Any]:
    per: list[dict[str, Any]] = []
    for client, proxy in zip(clients, proxies, strict=True):
        late = {True: 0, False: 0}
        total = {True: 0, False: 0}
        frames: dict[int, bool] = {}
        for key, (send_ns, is_video, frame) in sent.items():
            arrived = client.arrivals.get(key)
            ok = arrived is not None and arrived - send_ns <= DEADLINE_NS
            total[is_video] += 1
            if not ok:
                late[is_video] += 1
            if is_video:
                frames[frame] = frames.get(frame, True) and ok
        down = proxy.down.stats
        wire = (down.lost + down.overflow) / down.received if down.received else 0.0
        recovery = [ns / 1e6 for ns in client.recovery_ns]
        per.append({
            "wire_loss": round(wire, 5),
            "residual_loss": round(late[True] / total[True], 5) if total[True] else 0.0,
            "audio_residual_loss": round(late[False] / total[False], 5) if total[False] else 0.0,
            "rtx_received": client.rtx_received,
            "recovery_p50_ms": round(_percentile(recovery, 0.5), 1),
            "recovery_p99_ms": round(_percentile(recovery, 0.99), 1),
            "recovered": len(recovery),
            "nacks": client.nacks_sent,
            "duplicates": client.duplicates,
            "frames_complete": sum(frames.values()),
            "frames_incomplete": len(frames) - sum(frames.values()),
        })
    worst = max(per, key=lambda p: p["residual_loss"]) if per else {}
    return {
        "subscribers": per,
        "residual_loss": worst.get("residual_loss", 0.0),
        "audio_residual_loss": max((p["audio_residual_loss"] for p in per), default=0.0),
        "recovery_p99_ms": max((p["recovery_p99_ms"] for p in per), default=0.0),
        "router_cpu_us_per_packet": round(cpu * 1e6 / forwarded, 2) if forwarded else 0.0,
        "forwarded": forwarded,
        "publisher_retransmissions": publisher.retransmitted,
        "sent": len(sent),
    }
