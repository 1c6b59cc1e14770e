"""End-to-end: real Chromium holds meetings through a whole local Regio cluster.

One cluster for the module (``regio cluster up`` with the local three-region topology, the
front door trusting X-Forwarded-For from 127.0.0.1), one browser for the package, a browser
context per participant. The router-restart test kills a router, so it runs last.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page

from geo.geoip import DEFAULT_DATABASE, GeoIP
from tests.browser.conftest import Join
from tests.browser.harness import EEA_REGIONS, Cluster
from tests.browser.meeting import regio, wait_media, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EEA_ADDRESS = "5.1.83.1"      # DE in the embedded database (checked below)
US_ADDRESS = "8.8.8.8"        # US


def room(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_small_room_p2p_through_turn_and_third_refused(cluster: Cluster, join: Join) -> None:
    name = room("small")
    before = sum(cluster.turn_relayed_packets().values())
    a = join(name, "alice", size="small", relay=1)
    b = join(name, "bob", size="small", relay=1)
    wait_media([a, b], timeout=30)
    for state in (regio(a), regio(b)):
        assert state["mode"] == "p2p"
        assert state["relayOnly"] is True
        assert state["connection"].get("peer") == "connected"
        assert state["candidateType"] == "relay"
        assert state["remoteCandidateType"] == "relay"
    relayed = sum(cluster.turn_relayed_packets().values())
    assert relayed > before + 100, (before, relayed)
    deadline = time.monotonic() + 10
    while sum(cluster.turn_relayed_packets().values()) <= relayed:  # still flowing via TURN
        assert time.monotonic() < deadline, "TURN relayed nothing more"
        time.sleep(0.2)

    c = join(name, "carol", size="small", relay=1)
    [state] = wait_until([c], lambda s: s["state"] == "full", 15, "room full")
    assert state["error"]["code"] == "room_full"
    assert "full" in c.locator("#banner-text").inner_text()
    assert c.locator("#status").inner_text() == "room full"
    for page in (a, b):
        s = regio(page)
        assert s["state"] == "connected" and len(s["participants"]) == 1


def test_large_room_three_participants_then_one_leaves(cluster: Cluster, join: Join) -> None:
    name = room("large")
    pages = [join(name, n) for n in ("alice", "bob", "carol")]
    elapsed = wait_media(pages, timeout=30)
    states = [regio(p) for p in pages]
    for state in states:
        assert state["mode"] == "sfu"
        assert len(state["remoteVideos"]) == 2
        assert state["connection"] == {"signaling": "open", "publisher": "connected",
                                       "subscriber": "connected"}
    assert len({s["node"] for s in states}) == 1, "one room, one router"
    # What the person sees: a named tile per other participant, and the participant list.
    alice = pages[0]
    captions = alice.locator("#tiles figure:not(.self) figcaption").all_inner_texts()
    assert sorted(captions) == ["bob", "carol"]
    assert sorted(alice.locator("#participants li").all_inner_texts()) == ["alice", "bob", "carol"]
    assert "eu-" in alice.locator("#served-by").inner_text()

    alice.click("#mute-audio")
    assert regio(alice)["muted"] == {"audio": True, "video": False}
    assert alice.locator("#mute-audio").get_attribute("aria-pressed") == "true"
    alice.click("#mute-audio")
    assert regio(alice)["muted"]["audio"] is False

    pages[2].click("#leave")
    wait_until(pages[2:], lambda s: s["state"] == "left", 5, "carol left")
    wait_until(pages[:2], lambda s: [p["name"] for p in s["participants"]] == [
        "bob" if s["name"] == "alice" else "alice"] and len(s["remoteVideos"]) == 1, 10,
        "carol gone from the others")
    assert alice.locator("#tiles figure:not(.self)").count() == 1
    wait_media(pages[:2], timeout=10)
    print(f"three-way media flowing after {elapsed:.1f} s")


def test_last_person_in_a_room_stays_connected(cluster: Cluster, join: Join) -> None:
    # When everyone else leaves, the router's subscriber offer has nothing to send; it must
    # still be one Chromium accepts under max-bundle, so the last person stays put.
    name = room("last")
    pages = [join(name, n) for n in ("alice", "bob")]
    wait_media(pages, timeout=30)
    before = regio(pages[0])
    pages[1].click("#leave")
    [gone] = wait_until(pages[:1], lambda s: s["participants"] == [] and s["remoteVideos"] == []
                        and s["answersSent"] > before["answersSent"], 10,
                        "bob gone and the router's new offer answered")
    # The next pong proves the router handled that answer (one connection, in order): a
    # refused renegotiation would have surfaced as an error or a reconnect by then.
    wait_until(pages[:1], lambda s: s["pongs"] > gone["pongs"] or s["reconnects"] > 0, 25,
               "a pong after the answer")
    after = regio(pages[0])
    assert after["state"] == "connected"
    assert after["reconnects"] == before["reconnects"]
    assert after["participant"] == before["participant"]
    assert after["connection"]["subscriber"] == "connected"
    # Someone new arrives: the last person receives them on the same connection.
    late = join(name, "carol")
    wait_media([pages[0], late], timeout=20)
    assert regio(pages[0])["reconnects"] == before["reconnects"]


def test_chat_reaches_the_others_and_is_nowhere_on_disk(cluster: Cluster, join: Join) -> None:
    name = room("chat")
    pages = [join(name, n) for n in ("alice", "bob", "carol")]
    wait_until(pages, lambda s: s["state"] == "connected" and len(s["participants"]) == 2, 20,
               "everyone joined")
    secret = f"regio-chat-{uuid.uuid4().hex}"
    text = f"hello from alice {secret}"
    alice = pages[0]
    alice.fill("#chat-input", text)
    alice.press("#chat-input", "Enter")
    for page in pages[1:]:
        [state] = wait_until([page], lambda s: any(e["text"] == text for e in s["chatLog"]), 10,
                             "chat delivered")
        entry = next(e for e in state["chatLog"] if e["text"] == text)
        assert entry["name"] == "alice" and entry["self"] is False
        assert text in page.locator("#chat-log").inner_text()
    assert regio(alice)["chatLog"][-1]["self"] is True
    assert all(sum(e["text"] == text for e in regio(p)["chatLog"]) == 1 for p in pages)

    # What the nodes logged is in their log files already (logging flushes every record and
    # the chat was relayed before it arrived); etcd may still hold writes in flight: after a
    # later write is committed, anything it took before is on disk as well.
    cluster.etcd_barrier()
    needle = secret.encode()
    on_disk = [str(p) for p in Path(cluster.tmpdir).rglob("*")
               if p.is_file() and needle in p.read_bytes()]
    assert on_disk == [], f"chat text written to {on_disk}"
    assert secret not in cluster.etcd_dump()
    assert "\n".join(cluster.output).find(secret) < 0


def test_residency_through_the_page(cluster: Cluster, join: Join) -> None:
    geo = GeoIP(DEFAULT_DATABASE, private_copy=False)
    try:
        assert geo.lookup(EEA_ADDRESS).country == "DE"
        assert geo.lookup(US_ADDRESS).country == "US"
    finally:
        geo.close()
    turn_region = {n.port: n.region for n in cluster.turns()}
    routers = {n.node: n.region for n in cluster.routers()}

    def open_recording(name_: str, who: str, address: str, **query: object) -> Page:
        return join(name_, who, forwarded_for=address, **query)

    # An EEA participant (by the trusted proxy's header) in a room of default policy.
    eea_room = room("res-eea")
    eea = open_recording(eea_room, "eva", EEA_ADDRESS)
    [state] = wait_until([eea], lambda s: s["state"] == "connected", 20, "EEA join")
    answer = join.answer(eea)
    assert answer["jurisdiction"] == "EEA"
    router = answer["router"]
    assert isinstance(router, dict)
    assert router["jurisdiction"] == "EEA" and router["region"] in EEA_REGIONS
    assert routers[router["node"]] in EEA_REGIONS
    servers = answer["ice_servers"]
    assert isinstance(servers, list) and servers
    for server in servers:
        assert server["username"].split(":")[1] in EEA_REGIONS
        for url in server["urls"]:
            port = int(re.search(r":(\d+)", url.split(":", 1)[1]).group(1))  # type: ignore[union-attr]
            assert turn_region[port] in EEA_REGIONS, (url, turn_region)
    # ...and the page's own state says the same, without any address in it.
    assert state["jurisdiction"] == "EEA" and state["region"] in EEA_REGIONS
    assert routers[state["node"]] in EEA_REGIONS
    assert state["iceServers"] and all(s["region"] in EEA_REGIONS for s in state["iceServers"])
    assert "127.0.0.1" not in str(state) and EEA_ADDRESS not in str(state)
    assert "eu-" in eea.locator("#served-by").inner_text()

    # Contrast: the header really is what decides. A US participant goes to the US region...
    us_room = room("res-us")
    us = open_recording(us_room, "sam", US_ADDRESS)
    [us_state] = wait_until([us], lambda s: s["state"] == "connected", 20, "US join")
    assert us_state["region"] == "us-east" and us_state["jurisdiction"] == "US"
    # ...and the EEA participant joining that room is served from the EEA: the room spans
    # routers, each participant on the nearest router their jurisdiction allows.
    spanning = open_recording(us_room, "eva2", EEA_ADDRESS)
    [sp] = wait_until([spanning], lambda s: s["state"] == "connected", 20, "spanning join")
    assert sp["jurisdiction"] == "EEA" and sp["region"] in EEA_REGIONS
    # Across the trunk between the two routers each sees and hears the other, by name.
    wait_media([us, spanning], timeout=40)
    for page, other in ((us, "eva2"), (spanning, "sam")):
        assert [p["name"] for p in regio(page)["participants"]] == [other]
    us.fill("#chat-input", "hello across the trunk")
    us.press("#chat-input", "Enter")
    [heard] = wait_until([spanning], lambda s: any(
        e["text"] == "hello across the trunk" for e in s["chatLog"]), 10, "chat across a trunk")
    assert heard["chatLog"][-1]["name"] == "sam"
    # A small (p2p) room is one router and never spans: there the EEA participant is refused,
    # in words (409).
    p2p_room = room("res-us-p2p")
    small = open_recording(p2p_room, "sam3", US_ADDRESS, size="small")
    wait_until([small], lambda s: s["state"] == "connected", 20, "US p2p join")
    refused = open_recording(p2p_room, "eva3", EEA_ADDRESS)
    [r] = wait_until([refused], lambda s: s["state"] == "error", 15, "409")
    assert r["error"]["code"] == "room_outside_jurisdiction"
    assert "outside your jurisdiction" in refused.locator("#banner-text").inner_text()
    # A US participant in a ?policy=eea room is served from the EEA.
    strict = open_recording(room("res-strict"), "sam2", US_ADDRESS, policy="eea")
    [s_state] = wait_until([strict], lambda s: s["state"] == "connected", 20, "eea policy")
    assert s_state["policy"] == "eea" and s_state["region"] in EEA_REGIONS
    assert all(s["region"] in EEA_REGIONS for s in s_state["iceServers"])


def test_router_restart_mid_meeting(cluster: Cluster, join: Join) -> None:
    name = room("restart")
    pages = [join(name, n) for n in ("alice", "bob")]
    wait_media(pages, timeout=30)
    node = regio(pages[0])["node"]
    before = [regio(p)["participant"] for p in pages]

    cluster.kill_node(node)
    killed = time.monotonic()
    replacement = cluster.restart_node(node)
    wait_until(pages, lambda s: s["reconnects"] >= 1, 5, "the pages noticed")
    listening = _wait_listening(replacement.port + 1, 10) - killed
    # The 10 s recovery bound is this wait's timeout (the time is printed, not asserted).
    wait_media(pages, timeout=10 - (time.monotonic() - killed))
    resumed = time.monotonic() - killed
    after = [regio(p) for p in pages]
    # Rejoined through the front door with their previous tokens: same participants, new
    # sessions on the replacement or (while the front door's probes found the node dead) on
    # another router their jurisdiction allows; when they land on two, a trunk joins the room
    # and each still sees the other by name (wait_media matches videos by name).
    assert [s["participant"] for s in after] == before
    assert all(s["reconnects"] >= 1 for s in after)
    regions = {n.node: n.region for n in cluster.routers()}
    now = sorted({s["node"] for s in after})
    assert all(regions[n] in EEA_REGIONS for n in now), (now, regions)
    for state in after:
        assert sorted(p["name"] for p in state["participants"]) == sorted(
            s["name"] for s in after if s is not state)
    print(f"video resumed {resumed:.1f} s after the router was killed, on {now} "
          f"(killed {node}; the replacement listened after {listening:.1f} s)")


def _wait_listening(port: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return time.monotonic()
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} after {timeout} s")
