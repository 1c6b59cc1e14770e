"""The impairment model (loss bursts, rate, delay, reordering) and the proxy on loopback."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys

import pytest
import trio

from benchmarks.impair import Impairment, ImpairmentProxy, ImpairmentSettings
from benchmarks.impair.model import SettingsError
from benchmarks.impair.proxy import ProxyError


def _run(settings: ImpairmentSettings, n: int = 100_000, gap: float = 0.001) -> list[float | None]:
    imp = Impairment(settings, seed=3)
    return [imp.decide(i * gap, 1000) for i in range(n)]


def test_gilbert_elliott_keeps_the_mean_loss_and_the_mean_burst() -> None:
    out = _run(ImpairmentSettings(loss=5.0, burst=3.0))
    lost = [t is None for t in out]
    assert abs(sum(lost) / len(lost) - 0.05) < 0.005
    bursts, run = [], 0
    for gone in lost:
        if gone:
            run += 1
        elif run:
            bursts.append(run)
            run = 0
    assert abs(sum(bursts) / len(bursts) - 3.0) < 0.3
    random_loss = [t is None for t in _run(ImpairmentSettings(loss=2.0))]
    assert abs(sum(random_loss) / len(random_loss) - 0.02) < 0.003


def test_rate_cap_queues_then_drops_and_delay_keeps_order_unless_reordered() -> None:
    # 1000-byte datagrams every 1 ms (8 Mbit/s) into 800 kbit/s with a 100 ms buffer.
    out = _run(ImpairmentSettings(rate_kbps=800, queue_ms=100), n=2000)
    delivered = [t for t in out if t is not None]
    assert 180 < len(delivered) < 320  # about a tenth over two seconds, plus the buffer
    gaps = [b - a for a, b in itertools.pairwise(delivered)]
    assert min(gaps) >= 0.01 - 1e-9  # one datagram per 10 ms on the wire
    jittery = [t for t in _run(ImpairmentSettings(delay_ms=50, jitter_ms=20), n=5000) if t]
    assert jittery == sorted(jittery) and min(jittery) >= 0.03
    shuffled = [t for t in _run(ImpairmentSettings(delay_ms=5, reorder=10), n=5000) if t]
    assert shuffled != sorted(shuffled)


def test_bad_settings_are_refused_precisely() -> None:
    with pytest.raises(SettingsError, match="burst"):
        ImpairmentSettings(burst=0.5)
    with pytest.raises(SettingsError, match="unknown"):
        ImpairmentSettings().changed(lossy=3)
    with pytest.raises(ProxyError, match="loopback"):
        ImpairmentProxy(("127.0.0.1", 0), ("192.0.2.1", 9))


async def test_proxy_impairs_both_ways_and_changes_while_running() -> None:
    echo = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await echo.bind(("127.0.0.1", 0))
    target = echo.getsockname()

    async def echo_server() -> None:
        while True:
            data, addr = await echo.recvfrom(2048)
            await echo.sendto(data, addr)

    proxy = ImpairmentProxy(("127.0.0.1", 0), target, ImpairmentSettings(delay_ms=20), seed=1,
                            control=("127.0.0.1", 0))  # fmt: skip
    client = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await client.bind(("127.0.0.1", 0))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo_server)
        await nursery.start(proxy.run)
        start = trio.current_time()
        await client.sendto(b"ping", proxy.address)
        with trio.fail_after(10):
            assert await client.recv(2048) == b"ping"
        assert trio.current_time() - start >= 0.04  # 20 ms each way
        # Through the control socket: drop everything upstream.
        ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ctl.settimeout(10)
        assert proxy.control_address is not None
        ctl.sendto(json.dumps({"direction": "up", "set": {"loss": 99.9}}).encode(),
                   proxy.control_address)  # fmt: skip
        reply = json.loads(await trio.to_thread.run_sync(ctl.recv, 65536))
        assert reply["ok"] and reply["up"]["settings"]["loss"] == 99.9
        assert reply["down"]["settings"]["loss"] == 0.0
        ctl.sendto(b'{"set": {"bogus": 1}}', proxy.control_address)
        bad = json.loads(await trio.to_thread.run_sync(ctl.recv, 65536))
        assert not bad["ok"] and "bogus" in bad["error"]
        ctl.close()
        for _ in range(50):
            await client.sendto(b"x", proxy.address)
        proxy.update("up", loss=0)
        await client.sendto(b"after", proxy.address)
        with trio.fail_after(10):
            got = await client.recv(2048)
        while got == b"x":  # at most one of the 50 may have got through
            got = await client.recv(2048)
        assert got == b"after"
        assert proxy.up.stats.lost >= 49
        nursery.cancel_scope.cancel()
    echo.close()
    client.close()


def test_cli_refuses_a_non_loopback_target() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "control.cli", "impair", "--listen", "127.0.0.1:0",
         "--to", "192.0.2.7:9"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and "loopback" in result.stderr
