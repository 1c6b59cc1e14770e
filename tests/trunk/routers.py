"""Real router processes with trunks, against a real etcd: start, read the ready line, stop;
and the media check the tests share (one publisher, one subscriber, exact payloads)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import trio

from control.cluster_ca import create_ca, issue_node_certificate
from tests.control.conftest import python_env
from tests.router.synth import SynthClient, rtp

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RouterProc:
    node: str
    process: trio.Process
    ready: dict[str, str]

    @property
    def signaling(self) -> str:
        return self.ready["signaling"]

    def kill(self) -> None:
        if self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGKILL)


async def start_router(tmp: Path, etcd_urls: str, node: str, region: str,
                       lease_ttl: int = 3) -> RouterProc:
    create_ca(tmp / "ca")
    creds = issue_node_certificate(tmp / "ca", node, tmp / "ca" / "nodes")
    log = open(tmp / f"{node}.log", "ab")  # noqa: SIM115 - lives as long as the process
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "control", "router", "--workers", "1",
         "--etcd", etcd_urls, "--region", region,
         "--node-id", node, "--listen", "127.0.0.1", "--udp-port", "0",
         "--signaling", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
         "--lease-ttl", str(lease_ttl),
         "--trunk-cert", str(creds.cert), "--trunk-key", str(creds.key),
         "--trunk-ca", str(creds.ca)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=log, env=python_env(),
        cwd=str(REPO), start_new_session=True,
    )
    assert process.stdout is not None
    line = b""
    with trio.fail_after(40):
        while b"\n" not in line:
            chunk = await process.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError(f"router {node} exited: {(tmp / f'{node}.log').read_text()}")
            line += chunk
    return RouterProc(node, process, json.loads(line.split(b"\n")[0]))


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def payload_of(packet: bytes) -> bytes:
    """The RTP payload after the CSRC list and any header extension."""
    start = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        start += 4 + 4 * int.from_bytes(packet[start + 2:start + 4], "big")
    return packet[start:]


async def publish_and_receive(alice: SynthClient, bob: SynthClient, *, ssrc: int, count: int,
                              first_seq: int, offer_timeout: float,
                              connect_timeout: float) -> list[bytes]:
    """``alice`` publishes one Opus track and sends ``count`` numbered payloads; ``bob``, who
    gets it offered (across trunks when they are on different routers), receives all of them
    within 20 s. Returns the payloads sent, in order (``bob.subscriber.received`` holds what
    arrived)."""
    await alice.publish(audio_ssrc=ssrc)
    offer = await bob.answer_offer(timeout=offer_timeout)
    assert len(offer["tracks"]) == 1
    assert alice.publisher is not None and bob.subscriber is not None
    with trio.fail_after(connect_timeout):
        await alice.publisher.connected.wait()
        await bob.subscriber.connected.wait()
    sent = []
    for i in range(count):
        payload = i.to_bytes(2, "big") * 40
        alice.send_rtp(rtp(first_seq + i, ssrc, 111, payload, i * 960))
        sent.append(payload)
        if i % 20 == 0:
            await trio.sleep(0.005)
    with trio.fail_after(20):
        while len(bob.subscriber.received) < count:
            await trio.sleep(0.02)
    return sent
