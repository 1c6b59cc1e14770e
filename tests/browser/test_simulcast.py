"""End-to-end simulcast in real Chromium: three pages, one of them behind `regio impair`.

Its own module (so its own cluster): the layer the router sends a subscriber follows what that
subscriber's link carries and the size its page shows the video at. Figures (freezes under
loss, switch times) are printed for benchmarks/RESULTS.md; the assertions only use generous
bounds, because the machine running it may be loaded.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import Join
from tests.browser.harness import Cluster
from tests.browser.meeting import State, regio, wait_media, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RIDS = ("q", "h", "f")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _layer(state: State, who: str) -> str | None:
    value = ((state.get("link") or {}).get("layers") or {}).get(who)
    return value if isinstance(value, str) else None


class Impairment:
    """A `regio impair` process in front of the router, changed through its control socket."""

    def __init__(self, router_port: int) -> None:
        self.listen, self.control = _free_udp_port(), _free_udp_port()
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from control.cli import main; raise SystemExit(main())",
             "impair", "--listen", f"127.0.0.1:{self.listen}",
             "--to", f"127.0.0.1:{router_port}", "--control", f"127.0.0.1:{self.control}",
             "--seed", "12"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.settimeout(10)
        assert self.process.stdout is not None
        assert self.process.stdout.readline().startswith(b"{"), "regio impair did not start"

    def set(self, direction: str = "both", **values: float) -> None:
        request = {"direction": direction, "set": values}
        self.socket.sendto(json.dumps(request).encode(), ("127.0.0.1", self.control))
        assert json.loads(self.socket.recv(65536))["ok"]

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def impairment(cluster: Cluster) -> Iterator[Callable[[int], Impairment]]:
    made: list[Impairment] = []

    def start(router_port: int) -> Impairment:
        made.append(Impairment(router_port))
        return made[-1]

    yield start
    for proxy in made:
        proxy.close()


def _until(page: Page, check: Callable[[State], bool], timeout: float, what: str) -> float:
    """Seconds until ``check`` holds for the page's state; on timeout, what it last showed."""
    began = time.monotonic()
    while not check(state := regio(page)):
        if time.monotonic() - began > timeout:
            shown = {k: state.get(k) for k in ("videoSizes", "link", "receivedVideo")}
            shown["tiles"] = page.evaluate("""() => [...document.querySelectorAll("#tiles figure")]
                .map((f) => [f.className, f.clientWidth, f.clientHeight,
                             f.querySelector("video").clientHeight])""")
            raise AssertionError(f"{what} within {timeout} s: {shown}")
        time.sleep(0.25)
    return time.monotonic() - began


@dataclass
class Watch:
    """Samples what carol and bob receive from alice, so every phase has a timeline."""

    carol: Page
    bob: Page
    began: float = field(default_factory=time.monotonic)
    timeline: list[tuple[float, str | None, int, int, str | None, int]] = field(
        default_factory=list)

    def sample(self) -> State:
        state = regio(self.carol)
        video: State = state["receivedVideo"].get("alice") or {}
        link = state.get("link") or {}
        bob = regio(self.bob)
        bob_link = bob.get("link") or {}
        self.timeline.append((
            round(time.monotonic() - self.began, 2), _layer(state, "alice"),
            int(video.get("frameHeight", 0)), int(link.get("estimateBps", 0)),
            _layer(bob, "alice"), int(bob_link.get("estimateBps", 0)),
        ))  # fmt: skip
        return state

    def until(self, check: Callable[[State], bool], timeout: float, what: str) -> float:
        """Seconds until ``check`` holds for carol's state (sampled every 0.25 s)."""
        began = time.monotonic()
        while not check(self.sample()):
            if time.monotonic() - began > timeout:
                raise AssertionError(f"{what} within {timeout} s; timeline (t, carol layer, "
                                     f"height, estimate, bob layer, estimate): "
                                     f"{self.timeline[-80:]}")
            time.sleep(0.25)
        return time.monotonic() - began


def test_simulcast_layer_follows_the_link_and_the_tile(
    cluster: Cluster, join: Join, impairment: Callable[[int], Impairment]
) -> None:
    """Alice joins third, so she publishes three layers. Bob, on a clean leg, gets at most the
    layer his tile needs (his page sends `video_size`). Carol receives through `regio impair`:
    at 5 % loss her video keeps decoding; capped at 300 kbit/s she is moved to the lowest layer,
    and above it again once the cap is lifted."""
    name = f"layers-{uuid.uuid4().hex[:8]}"
    bob = join(name, "bob")
    wait_until([bob], lambda s: s["state"] == "connected" and bool(s["node"]), 30, "bob in")
    proxy = impairment(cluster.nodes[regio(bob)["node"]].port)
    carol = join(name, "carol", via=f"127.0.0.1:{proxy.listen}")
    wait_until([carol], lambda s: s["state"] == "connected", 30, "carol in")
    alice = join(name, "alice")
    wait_media([alice, bob, carol], timeout=60)
    # Only alice's camera matters here: bob and carol turn theirs off (leaner, and their
    # single-layer streams, which no router can thin, do not crowd carol's capped leg).
    for page in (bob, carol):
        page.click("#mute-video")
    watch = Watch(carol, bob)
    watch.until(lambda s: _layer(s, "alice") in RIDS, 30, "carol gets a simulcast layer")

    # The page tells the router how tall it shows alice's video, and the router honours it.
    [bob_state] = wait_until([bob], lambda s: s["videoSizes"].get("alice", 0) > 0, 10, "size")
    shown = bob_state["videoSizes"]["alice"]
    # (Through the CSSOM: the page's content security policy refuses inline style sheets.)
    tiles = "[...document.querySelectorAll('#tiles figure:not(.self)')]"
    bob.evaluate(f"() => {tiles}.forEach((f) => {{ f.style.width = '100px'; }})")
    small_after = _until(bob, lambda s: s["videoSizes"].get("alice", 999) < 100
                         and _layer(s, "alice") == "q", 20, "bob's small tile gets q")
    bob_state = regio(bob)
    bob.evaluate(f"() => {tiles}.forEach((f) => {{ f.style.width = ''; }})")
    began = time.monotonic()
    _until(bob, lambda s: _layer(s, "alice") in ("h", "f"), 30, "bob's tile back to size")
    print(f"bob shows alice {shown} px high, then {bob_state['videoSizes']['alice']} px: the "
          f"lowest layer {small_after:.1f} s later, above it {time.monotonic() - began:.1f} s "
          f"after the tile grew back; alice publishes {regio(alice)['publishLayers']}")

    # 5 % loss both ways: frames keep decoding; freezes are measured.
    proxy.set(loss=5.0)
    before = watch.sample()["receivedVideo"]["alice"]
    time.sleep(15)
    after = watch.sample()["receivedVideo"]["alice"]
    decoded = after["framesDecoded"] - before["framesDecoded"]
    freezes = after["freezesDuration"] - before["freezesDuration"]
    proxy.set(loss=0.0)
    assert decoded > 60, f"only {decoded} frames decoded in 15 s at 5 % loss"
    watch.until(lambda s: _layer(s, "alice") in ("h", "f"), 60, "carol above the lowest layer")

    # Capacity towards carol cut to 300 kbit/s: the lowest layer; lifted: back above it.
    proxy.set("down", rate_kbps=300.0)
    down_after = watch.until(lambda s: _layer(s, "alice") == "q", 30, "carol's layer dropped")
    time.sleep(2)
    proxy.set("down", rate_kbps=0.0)
    up_after = watch.until(lambda s: _layer(s, "alice") in ("h", "f"), 60,
                           "carol's layer came back up")  # fmt: skip
    bob_layers = sorted({str(t[4]) for t in watch.timeline})
    print(f"5 % loss: {decoded} frames in 15 s, freezes {freezes:.2f} s "
          f"({freezes * 4:.2f} s per minute); lowest layer {down_after:.1f} s after the cap, "
          f"above it {up_after:.1f} s after lifting; bob's layers meanwhile: {bob_layers}")
    print(f"timeline (t, carol layer, height, estimate, bob layer, estimate): {watch.timeline}")
    # Bob's leg is clean: the cut towards carol never costs him his layer (Chromium's fake
    # camera activates q and h only, so h is the top he can get).
    assert "q" not in bob_layers, f"bob, on a clean leg, fell to the lowest layer: {bob_layers}"
