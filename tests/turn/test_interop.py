"""Interop against independent implementations, with ``regio turn`` as a real subprocess:
coturn's ``turnutils_uclient`` (UDP and TCP, REST credentials, client-to-client and its default
RTP/RTCP mode with port reservations), coturn's ``turnutils_stunclient``, and aioice's TURN
client (UDP and TCP)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

ROOT = Path(__file__).resolve().parents[2]
SECRET = "interop-secret"
REGION = "eu-west"



@pytest.fixture(autouse=True)
def coturn_tools() -> None:
    """coturn's client tools are part of the test setup (infra/scripts/system-packages.sh):
    missing, the interop tests fail with this message rather than being skipped."""
    missing = [t for t in ("turnutils_uclient", "turnutils_peer", "turnutils_stunclient")
               if shutil.which(t) is None]
    assert not missing, f"{', '.join(missing)} not installed: run `make setup` (coturn)"


class TurnProcess:
    def __init__(self, proc: subprocess.Popen[str], ready: str) -> None:
        self.proc = proc
        self.ready = ready

    def port(self, protocol: str) -> int:
        match = re.search(rf"{protocol}=127\.0\.0\.1:(\d+)", self.ready)
        assert match, self.ready
        return int(match.group(1))


@pytest.fixture
def turn_process() -> Iterator[Callable[..., TurnProcess]]:
    started: list[subprocess.Popen[str]] = []

    def start(*extra: str) -> TurnProcess:
        cmd = [sys.executable, "-m", "control", "turn", "--region", REGION,
               "--listen", "127.0.0.1:0", "--tcp-listen", "127.0.0.1:0",
               "--auth-secret", SECRET, "--allow-peer", "127.0.0.0/8",
               "--relay-ip", "127.0.0.3", "--relay-ports", "53000-53999",
               "--metrics", "127.0.0.1:0", *extra]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("regio turn ready"), (line, proc.stderr and proc.stderr.read())
        return TurnProcess(proc, line)

    yield start
    for proc in started:  # always stopped, by pid
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _metric(turn: TurnProcess, prefix: str) -> float:
    """A counter from the node's /metrics (0 when it has no sample yet)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{turn.port('metrics')}/metrics",
                                timeout=5) as answer:
        text = answer.read().decode()
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _uclient(port: int, *flags: str) -> str:
    cmd = ["turnutils_uclient", *flags, "-y", "-c", "-n", "20", "-m", "2", "-l", "120",
           "-W", SECRET, "-u", f"{REGION}:alice", "-p", str(port), "-e", "127.0.0.1",
           "127.0.0.1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_turnutils_uclient_client_to_client(transport: str,
                                            turn_process: Callable[..., TurnProcess]) -> None:
    # No --udp-challenge-slack: uclient's first Allocate (44 bytes or more) gets its 401 at once
    # within the 3x byte budget; its two allocations on this node relay to each other (live
    # relay addresses are allowed peers).
    turn = turn_process()
    out = _uclient(turn.port(transport), *(["-t"] if transport == "tcp" else []))
    lost = re.search(r"Total lost packets (\d+) \(", out)
    assert lost is not None, out
    assert lost.group(1) == "0", out
    assert re.search(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=\1\b", out), out
    print([line for line in out.splitlines() if "lost packets" in line or "tot_" in line][-3:])
    deferred = _metric(turn, 'regio_turn_dropped_total{reason="amplification_deferred"')
    print(f"{transport}: amplification_deferred={deferred}")


@pytest.fixture
def echo_peer() -> Iterator[int]:
    """coturn's ``turnutils_peer``: a UDP echo peer on a free loopback port."""
    from control.localetcd import free_ports

    port = free_ports(1)[0]
    proc = subprocess.Popen(["turnutils_peer", "-p", str(port), "-L", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        proc.kill()
        proc.wait(5)


def test_turnutils_uclient_default_mode_rtp_rtcp_pairs(
        turn_process: Callable[..., TurnProcess], echo_peer: int) -> None:
    """Issue 15 #11: uclient's default mode (no -y, no -c) allocates RTP/RTCP pairs: EVEN-PORT
    with the R bit, then RESERVATION-TOKEN from a second socket. Both relay to the echo peer."""
    turn = turn_process()
    cmd = ["turnutils_uclient", "-n", "20", "-m", "2", "-l", "120", "-W", SECRET,
           "-u", f"{REGION}:alice", "-p", str(turn.port("udp")), "-e", "127.0.0.1",
           "-r", str(echo_peer), "127.0.0.1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    out = done.stdout + done.stderr
    lost = re.search(r"Total lost packets (\d+) \(", out)
    assert lost is not None and lost.group(1) == "0", out
    totals = re.search(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)", out)
    assert totals is not None and int(totals.group(1)) == int(totals.group(2)) > 0, out
    held = _metric(turn, 'regio_turn_reservations_total{reason="held"')
    redeemed = _metric(turn, 'regio_turn_reservations_total{reason="redeemed"')
    # uclient reserves for each RTP allocation and redeems the token for its RTCP partner.
    assert held >= redeemed >= 1, (held, redeemed)


def test_turnutils_uclient_region_bound_username_only(
        turn_process: Callable[..., TurnProcess]) -> None:
    turn = turn_process()
    cmd = ["turnutils_uclient", "-y", "-c", "-n", "2", "-W", SECRET, "-u", "us-east:alice",
           "-p", str(turn.port("udp")), "-e", "127.0.0.1", "127.0.0.1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    assert "Cannot complete Allocation" in out and "lost packets" not in out, out


def test_turnutils_stunclient_binding(turn_process: Callable[..., TurnProcess]) -> None:
    """coturn's STUN client gets its reflexive address from a Binding (Debian's coturn ships no
    ``turnutils_rfc5769check``; our codec is checked against the RFC 5769 vectors themselves in
    tests/stun/test_rfc5769.py)."""
    turn = turn_process()
    done = subprocess.run(["turnutils_stunclient", "-p", str(turn.port("udp")), "127.0.0.1"],
                          capture_output=True, text=True, timeout=30)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert re.search(r"UDP reflexive addr: 127\.0\.0\.1:\d+", out), out


async def _aioice_relay(port: int, transport: str) -> tuple[bytes, bytes]:
    import time

    from aioice import turn as aioice_turn

    from turn.server.auth import mint_rest_credentials

    username, password = mint_rest_credentials(SECRET, REGION, "bob", 600, time.time())
    received: asyncio.Queue[bytes] = asyncio.Queue()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            received.put_nowait(data)

    loop = asyncio.get_running_loop()
    peer_got: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()

    class Peer(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            peer_got.put_nowait((data, addr))

    peer_transport, _ = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    peer_addr = peer_transport.get_extra_info("socket").getsockname()
    transport_obj, _proto = await aioice_turn.create_turn_endpoint(
        Proto, server_addr=("127.0.0.1", port), username=username, password=password,
        lifetime=600, transport=transport)
    try:
        transport_obj.sendto(b"hello from aioice", peer_addr)
        data, relayed = await asyncio.wait_for(peer_got.get(), 5)
        peer_transport.sendto(b"hello back", relayed)
        back = await asyncio.wait_for(received.get(), 5)
        return data, back
    finally:
        transport_obj.close()
        peer_transport.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_aioice_allocates_and_relays(transport: str,
                                           turn_process: Callable[..., TurnProcess]) -> None:
    # aioice's first Allocate is 36 bytes: over UDP it gets its 401 at once (the per-source
    # byte budget allows 3x), with no --udp-challenge-slack.
    turn = turn_process()
    port = turn.port(transport)
    data, back = await trio.to_thread.run_sync(lambda: asyncio.run(_aioice_relay(port, transport)))
    assert data == b"hello from aioice"
    assert back == b"hello back"
    deferred = _metric(turn, 'regio_turn_dropped_total{reason="amplification_deferred"')
    print(f"aioice {transport}: amplification_deferred={deferred}")
    if transport == "udp":
        assert deferred == 0  # its 36-byte first copy was answered
