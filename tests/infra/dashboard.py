"""``make dashboard``: the Grafana dashboard's panels over real data, drawn with matplotlib.

Grafana itself cannot be installed on the project's machines (it is in none of the package
registries they reach), so this does the next most honest thing: it starts a real local
cluster (``regio cluster up``, three regions), a real Prometheus (Debian's) scraping it through
the front door's service discovery with the project's recording rules, drives synthetic
WebRTC participants (real ICE, DTLS, SRTP; joined through the front door with client addresses
from each region's country, sent only as an X-Forwarded-For header to 127.0.0.1), and then
draws every panel of ``infra/monitoring/grafana/regio-dashboard.json`` from Prometheus'
``query_range`` answers, labelled as not being Grafana.

    python -m tests.infra.dashboard docs/dashboard.png [--seconds 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from control.localetcd import free_ports
from control.netns import stop_process_group
from tests.router.synth import SynthClient, rtp
from tests.turn.netclient import NetClient
from turn.stun import Lifetime, Method

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "infra" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "regio-dashboard.json"
#: Where each region's participants come from (only ever an X-Forwarded-For header value).
CLIENTS = {"eu-central": "5.1.83.1", "eu-north": "193.10.0.1", "us-east": "8.8.8.8"}
AUDIO_PPS, VIDEO_PPS = 50, 150
#: Grafana's unit ids, as the axis titles say them.
UNITS = {"pps": "packets/s", "reqps": "requests/s", "µs": "µs", "ms": "ms", "percent": "%"}
NOTICE = ("Panels of infra/monitoring/grafana/regio-dashboard.json drawn with matplotlib from a "
          "real Prometheus scraping a local 3-region cluster under synthetic WebRTC load. "
          "Not a Grafana screenshot: Grafana cannot be installed here.")


def post_join(frontdoor: str, room: str, client_ip: str, name: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{frontdoor}/v1/rooms/{room}/join", method="POST",
        data=json.dumps({"name": name, "policy": "nearest"}).encode(),
        headers={"content-type": "application/json", "x-forwarded-for": client_ip})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


@dataclass
class Room:
    """One meeting: a publisher (audio + video) and its subscribers."""

    name: str
    region: str
    subscribers: int
    video_pps: int = VIDEO_PPS
    subscribers_from: str = ""
    """Region whose clients subscribe (default: the room's own): another region's subscribers
    get their nearest router there, and the media crosses a trunk."""
    clients: list[SynthClient] = field(default_factory=list)
    relays: list[NetClient] = field(default_factory=list)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


async def join(nursery: trio.Nursery, frontdoor: str, room: Room, who: str,
               region: str = "") -> SynthClient:
    region = region or room.region
    answer = await trio.to_thread.run_sync(post_join, frontdoor, room.name, CLIENTS[region],
                                           who)
    assert answer["region"] == region, answer
    client = await SynthClient.join(nursery, answer["router"]["signaling_url"],
                                    answer["token"], seed=random.randrange(1 << 30))
    room.clients.append(client)
    await allocate_relay(room, answer["ice_servers"])
    return client


async def allocate_relay(room: Room, ice_servers: list[dict[str, Any]]) -> None:
    """Take a TURN allocation with the credentials the front door minted (as a browser behind
    a strict NAT would), so the TURN panels show each region's nodes at work."""
    server = next((s for s in ice_servers for u in s["urls"] if u.endswith("transport=udp")),
                  None)
    if server is None:
        return
    url = next(u for u in server["urls"] if u.endswith("transport=udp"))
    host, _, port = url.split(":", 1)[1].split("?")[0].rpartition(":")
    relay = NetClient("udp", (host, int(port)))
    relay.username, relay.password = server["username"], server["credential"]
    await relay.connect()
    await relay.allocate()
    room.relays.append(relay)


async def run_room(frontdoor: str, room: Room, corrupt_after: float | None = None, *,
                   task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Join everyone, then publish until cancelled (``room.scope``)."""
    with room.scope:
        async with trio.open_nursery() as nursery:
            publisher = await join(nursery, frontdoor, room, "p")
            subscribers = [await join(nursery, frontdoor, room, f"s{i}", room.subscribers_from)
                           for i in range(room.subscribers)]
            audio, video = random.randrange(1, 1 << 31), random.randrange(1, 1 << 31)
            await publisher.publish(audio, video)
            for sub in subscribers:
                while len(sub.tracks) < 2:  # audio and video
                    await sub.answer_offer(timeout=20)
            assert publisher.publisher is not None
            with trio.fail_after(20):
                await publisher.publisher.connected.wait()
            task_status.started()
            await publish(room, publisher, audio, video, subscribers, corrupt_after)


async def publish(room: Room, publisher: SynthClient, audio: int, video: int,
                  subscribers: list[SynthClient], corrupt_after: float | None) -> None:
    """50 audio and ``video_pps`` video packets a second, in 20 ms ticks; subscribers' received
    packets are dropped as they come (only the router's counters matter here)."""
    seq = {audio: 0, video: 0}
    payloads = {audio: bytes(120), video: bytes(1000)}
    started = trio.current_time()
    tick = 0
    leg = publisher.publisher
    assert leg is not None
    while True:
        tick += 1
        video_now = room.video_pps * tick // 50 - room.video_pps * (tick - 1) // 50
        for ssrc, count, pt in ((audio, 1, 111), (video, video_now, 96)):
            for _ in range(count):
                seq[ssrc] += 1
                publisher.send_rtp(rtp(seq[ssrc], ssrc, pt, payloads[ssrc], seq[ssrc] * 960))
        if corrupt_after is not None and trio.current_time() - started > corrupt_after:
            # What a corrupting middlebox does: right header, wrong authentication tag.
            bad = rtp(seq[video] + 1000, video, 96, os.urandom(400), 0)
            leg.driver.sock.sendto(bad, leg.transport.remote_address)
        for sub in subscribers:
            if sub.subscriber is not None:
                sub.subscriber.received.clear()
        await trio.sleep_until(started + tick / 50)


def prometheus_config(directory: Path, frontdoor: str, etcd: str) -> Path:
    """Scrape what the front door's operator listener lists (``regio cluster up`` puts it on
    the join port + 1), and etcd."""
    scheme_host, _, port = frontdoor.rpartition(":")
    operator = f"{scheme_host}:{int(port) + 1}"
    rules = [str(p) for p in sorted((MONITORING / "rules").glob("*.yml"))]
    etcd_target = etcd.split("://", 1)[1].split(",")[0]
    config = {
        "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
        "rule_files": rules,
        "scrape_configs": [
            {"job_name": "regio", "honor_labels": True,
             "http_sd_configs": [{"url": f"{operator}/v1/prometheus/targets",
                                  "refresh_interval": "5s"}],
             "relabel_configs": [
                 {"source_labels": ["regio_region"], "target_label": "region"},
                 {"source_labels": ["regio_node"], "target_label": "node"},
                 {"regex": "regio_(region|node|kind|jurisdiction)", "action": "labeldrop"}]},
            {"job_name": "etcd", "static_configs": [{"targets": [etcd_target]}]},
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(json.dumps(config, indent=1))  # YAML is a superset of JSON
    return path


def query_range(prometheus: str, expr: str, start: float, end: float, step: float
                ) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{query}", timeout=30) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]["result"]  # type: ignore[no-any-return]


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def render(prometheus: str, start: float, end: float, out: Path) -> None:
    """Draw every panel of the dashboard (its gridPos layout, its queries and legends)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) // 8
    figure, axes = plt.subplots(rows, 2, figsize=(16, 4.2 * rows), squeeze=False)
    step = 4.0
    drawn = 0
    for row in axes:
        for cell in row:
            cell.set_visible(False)  # shown again when a panel sits there
    for panel in panels:
        ax = axes[panel["gridPos"]["y"] // 8][panel["gridPos"]["x"] // 12]
        ax.set_visible(True)
        for target in panel["targets"]:
            expr = target["expr"].replace("$region", ".*")
            for series in query_range(prometheus, expr, start, end, step):
                xs = [float(t) - start for t, _ in series["values"]]
                ys = [float(v) for _, v in series["values"]]
                ax.plot(xs, ys, label=legend(target["legendFormat"], series["metric"]),
                        linewidth=1.6)
                drawn += 1
        unit = UNITS.get(panel["fieldConfig"]["defaults"].get("unit", ""), "")
        ax.set_title(f"{panel['title']}" + (f" ({unit})" if unit else ""), fontsize=11,
                     loc="left")
        ax.set_xlim(0, end - start)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.set_xlabel("seconds since the cluster came up", fontsize=8)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no samples (zero)", ha="center", va="center",
                    transform=ax.transAxes, color="grey")
    if drawn == 0:
        raise RuntimeError("Prometheus returned no samples at all: did it find the targets?")
    figure.suptitle(f"{dashboard['title']} dashboard: {NOTICE}", fontsize=10, wrap=True)
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=90)


async def wait_http(url: str, timeout: float = 60.0) -> None:
    with trio.fail_after(timeout):
        while True:
            try:
                await trio.to_thread.run_sync(lambda: urllib.request.urlopen(url, timeout=2))
                return
            except OSError:
                await trio.sleep(0.5)


async def drive(frontdoor: str, seconds: float) -> None:
    """Meetings come and go so that every per-region line moves."""
    plan = [  # (start second, room)
        (0, Room("standup", "eu-central", 2)),
        (0, Room("fika", "eu-north", 1)),
        (0, Room("allhands", "us-east", 2)),
        (0.25, Room("review", "eu-central", 3, video_pps=250)),
        (0.45, Room("retro", "us-east", 1)),
        # Publisher in Frankfurt, subscribers in the US: one trunk eu-central -> us-east.
        (0.55, Room("townhall", "eu-central", 2, subscribers_from="us-east")),
    ]
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for fraction, room in plan:
            await trio.sleep_until(started + fraction * seconds)
            corrupt = 0.4 * seconds if room.name == "fika" else None
            await nursery.start(run_room, frontdoor, room, corrupt)
            if room.name == "standup":
                nursery.start_soon(_end_later, room, started + 0.7 * seconds)
        await trio.sleep_until(started + seconds)
        nursery.cancel_scope.cancel()


async def _end_later(room: Room, at: float) -> None:
    await trio.sleep_until(at)
    for client in room.clients:
        await client.leave()
    for relay in room.relays:
        await relay.request(Method.REFRESH, Lifetime(0))  # release the allocation now
        await relay.close()
    room.scope.cancel()


async def main(out: Path, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="regio-dashboard-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        cluster = subprocess.Popen(
            [sys.executable, "-m", "control", "cluster", "up", "--topology",
             str(REPO / "infra/local/topology.toml"), "--json", "--trusted-proxy",
             "127.0.0.1/32"], stdout=subprocess.PIPE, env=env, start_new_session=True)
        prometheus: subprocess.Popen[bytes] | None = None
        try:
            assert cluster.stdout is not None
            ready: dict[str, Any] = {}
            while ready.get("event") != "ready":
                line = await trio.to_thread.run_sync(cluster.stdout.readline)
                assert line, "regio cluster up exited before it was ready"
                ready = json.loads(line)
            frontdoor, etcd = ready["frontdoor"], ready["etcd"]
            (port,) = free_ports(1)
            url = f"http://127.0.0.1:{port}"
            prometheus = subprocess.Popen(
                ["prometheus", f"--config.file={prometheus_config(Path(tmp), frontdoor, etcd)}",
                 f"--storage.tsdb.path={tmp}/tsdb", f"--web.listen-address=127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/prometheus.log", "wb"),  # noqa: SIM115
                start_new_session=True)
            await wait_http(f"{url}/-/ready")
            start = time.time()
            await drive(frontdoor, seconds)
            await trio.sleep(6)  # the last scrape and rule evaluation
            render(url, start, time.time(), out)
        finally:
            if prometheus is not None:
                stop_process_group(prometheus.pid, process=prometheus)
            # cluster up drains its nodes on SIGTERM, then stops etcd: give it time.
            stop_process_group(cluster.pid, grace=60.0, process=cluster)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=200.0)
    options = parser.parse_args()
    trio.run(main, options.out, options.seconds)
