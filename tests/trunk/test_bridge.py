"""Three routers' trunk bridges wired in one process (real trunk sessions, real forwarders,
virtual time): announce/subscribe across a trunk, exact payloads, then loss on the direct link
moves the flow to a relay router, with two disjoint paths (copies dropped by SRTP index) while
the switch is pending; relays refuse envelopes from routers that are not their trunk peers;
loss on any leg, direct or either side of a relay, is repaired on that leg from its cache."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from router.forwarding.specs import SubscriptionSpec, codec_key
from router.session.forwarder_adapter import ForwarderPlane
from router.session.media import PublishedTrack
from router.trunk.bridge import TrunkBridge, remote_track
from router.trunk.messages import ChatRelay, TrackAnnounce
from router.trunk.paths import LinkState, PathConfig
from router.trunk.relay import wrap
from router.trunk.session import TrunkControl, TrunkUp
from tests.trunk.helpers import Wire, identities

ADDR = {"A": ("127.0.0.1", 1), "B": ("127.0.0.1", 2), "R": ("127.0.0.1", 3)}
JURIS = {"A": "EEA", "B": "EEA", "R": "EEA"}


@dataclass
class Room:
    policy: str = "nearest"


@dataclass
class Rooms:
    """The session core's room side as the bridge sees it (SessionRooms)."""

    local: list[PublishedTrack] = field(default_factory=list)
    rooms: dict[str, object] = field(default_factory=lambda: {"room": Room()})
    track_epoch: int = 0
    remote: dict[str, PublishedTrack] = field(default_factory=dict)
    people: list[tuple[str, str | None]] = field(default_factory=list)
    remote_people: dict[tuple[str, str], str | None] = field(default_factory=dict)
    chat_out: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    chat_in: list[tuple[str, str | None, str]] = field(default_factory=list)

    def local_tracks(self, room_name: str) -> list[PublishedTrack]:
        return list(self.local)

    def add_remote_track(self, room_name: str, track: PublishedTrack) -> bool:
        new = track.track_id not in self.remote
        self.remote[track.track_id] = track
        return new

    def remove_remote_track(self, room_name: str, track_id: str) -> bool:
        return self.remote.pop(track_id, None) is not None

    def local_participants(self, room_name: str) -> list[tuple[str, str | None]]:
        return list(self.people)

    def deliver_remote_chat(self, room_name: str, participant: str, name: str | None,
                            text: str) -> bool:
        self.chat_in.append((participant, name, text))
        return True

    def add_remote_participant(self, room_name: str, router: str, participant: str,
                               name: str | None) -> bool:
        new = self.remote_people.get((router, participant), ...) != name
        self.remote_people[(router, participant)] = name
        return new

    def remove_remote_participant(self, room_name: str, router: str, participant: str) -> bool:
        return self.remote_people.pop((router, participant), ...) is not ...


class Collect:
    def __init__(self) -> None:
        self.rtp: list[bytes] = []

    def send_rtp(self, packet: bytes) -> bool:
        self.rtp.append(packet)
        return True

    def send_rtp_batch(self, packets: list[bytes]) -> int:
        self.rtp += packets
        return len(packets)

    def send_rtcp(self, packet: bytes) -> bool:
        return True


class Node:
    def __init__(self, name: str) -> None:
        self.name = name
        self.rooms = Rooms()
        self.plane = ForwarderPlane(seed=ord(name))
        self.outbox: list[tuple[bytes, tuple[str, int]]] = []
        self.bridge = TrunkBridge(self.rooms, self.plane, self.outbox,  # type: ignore[arg-type]
                                  lambda room: frozenset({"A", "B"}), local=name,
                                  path_config=PathConfig(hold=1.0))


class Cluster:
    def __init__(self, tmp: Path) -> None:
        ids = identities(tmp, "A", "B", "R")
        self.nodes = {n: Node(n) for n in "ABR"}
        self.wires = [Wire(ids[a], ids[b], client_node=a, server_node=b)
                      for a, b in (("A", "B"), ("A", "R"), ("B", "R"))]
        self.seen = [(0, 0)] * len(self.wires)
        self.now = 0.0
        self.drop_direct = 0.0
        self.dropped = 0
        self.direct = 0
        self.drop: Callable[[str, str, bytes], bool] | None = None
        """``(from, to, datagram) -> lost``: loss on any leg."""

    def step(self, seconds: float = 0.3) -> None:
        for i, wire in enumerate(self.wires):
            wire.now = self.now
            wire.advance(seconds, step=0.01)
            client, server = wire.client.local.node, wire.server_node
            c_seen, s_seen = self.seen[i]
            self._events(client, wire.client_events[c_seen:], wire.client)
            self._events(server, wire.server_events[s_seen:], wire.server)
            self.seen[i] = (len(wire.client_events), len(wire.server_events))
        self.now += seconds
        for _ in range(5):
            self.deliver()

    def _events(self, node: str, events: list[object], session: object) -> None:
        bridge = self.nodes[node].bridge
        for event in events:
            if isinstance(event, TrunkUp):
                bridge.leg_up(session, ADDR[event.peer], self.now)  # type: ignore[arg-type]
            elif isinstance(event, TrunkControl):
                peer = session.peer_node  # type: ignore[attr-defined]
                bridge.on_message(peer, event.message, self.now)

    def deliver(self) -> None:
        for _ in range(4):  # relayed packets take a second round
            self._deliver_once()

    def _deliver_once(self) -> None:
        for name, node in self.nodes.items():
            node.plane.flush()
            out, node.outbox[:] = list(node.outbox), []
            for data, addr in out:
                dst = next(n for n, a in ADDR.items() if a == addr)
                if self.drop is not None and self.drop(name, dst, data):
                    self.dropped += 1
                    continue
                if {name, dst} == {"A", "B"} and data[0] != 0xE7:
                    self.direct += 1
                    if self.drop_direct and self.direct % int(1 / self.drop_direct) == 0:
                        self.dropped += 1
                        continue
                receiver = self.nodes[dst].bridge
                if data[0] == 0xE7:
                    receiver.receive_envelope(data, ADDR[name], self.now)
                else:
                    receiver.receive_media(data, ADDR[name], 192 <= data[1] <= 223, self.now)


OPUS_TRACK = TrackAnnounce("room", "alice:0:1", "alice", "audio", "opus", 48000, 2, 111,
                           (("minptime", "10"),), ("transport-cc",), ())


def opus_track() -> PublishedTrack:
    return remote_track(OPUS_TRACK)


def published_to_bob(cluster: Cluster, ann: TrackAnnounce) -> Collect:
    """Alice's track published on A and announced over the trunks; bob on B subscribed."""
    a, b = cluster.nodes["A"], cluster.nodes["B"]
    track = remote_track(ann)
    a.plane.add_track(track, Collect(), 0.0)
    a.rooms.local.append(track)
    for _ in range(3):
        cluster.step()
    bob = Collect()
    b.plane.add_leg("bob", bob)
    codec = codec_key(ann.codec, ann.clock_rate, ann.channels)
    b.plane.subscribe_leg(SubscriptionSpec("bob", ann.track, 5, {codec: ann.payload_type}), 0.0)
    return bob


def opus_to_bob(cluster: Cluster) -> Collect:
    return published_to_bob(cluster, OPUS_TRACK)


def test_relay_paths_and_deduplication(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    a, b, r = (cluster.nodes[n] for n in "ABR")
    track = opus_track()
    a.plane.add_track(track, Collect(), 0.0)
    a.rooms.local.append(track)
    for _ in range(3):
        cluster.step()
    assert set(a.bridge.legs) == {"B", "R"} and set(b.bridge.legs) == {"A", "R"}
    assert "alice:0:1" in b.rooms.remote  # announced over the trunk and offered in the room
    assert b.bridge.legs["A"].subscribed and a.bridge.legs["B"].sending == {"alice:0:1"}
    assert not r.bridge.legs["A"].subscribed  # R serves no participant of the room
    bob = Collect()
    b.plane.add_leg("bob", bob)
    b.plane.subscribe_leg(SubscriptionSpec("bob", "alice:0:1", 5, {"opus/48000/2": 111}), 0.0)

    sent: list[bytes] = []
    seq = 0

    def publish(n: int) -> None:
        nonlocal seq
        for _ in range(n):
            payload = struct.pack("!I", seq) * 20
            a.plane.on_rtp("alice", struct.pack("!BBHII", 0x80, 111, seq, seq * 960, 77)
                           + payload, cluster.now)
            sent.append(payload)
            seq += 1
        cluster.deliver()

    publish(50)
    assert [p[12:] for p in bob.rtp] == sent

    # 10 % loss on the direct link: a second path through R at once, the switch after the hold
    lossy = {("A", "B"): LinkState(0.10, 20.0), ("A", "R"): LinkState(0.0, 10.0),
             ("R", "B"): LinkState(0.0, 10.0), ("B", "A"): LinkState(0.10, 20.0),
             ("B", "R"): LinkState(0.0, 10.0), ("R", "A"): LinkState(0.0, 10.0)}
    cluster.drop_direct = 0.10
    a.bridge.update_paths(lossy, JURIS, cluster.now)
    route = a.bridge.legs["B"].route
    assert route is not None and route.primary.relay is None and route.secondary is not None
    publish(100)
    # every packet exactly once despite the loss (a lost packet's relayed copy comes later)
    assert sorted(p[12:] for p in bob.rtp) == sorted(sent)
    assert cluster.dropped > 0 and b.bridge.stats.duplicates > 0
    assert r.bridge.stats.relayed >= 100
    cluster.now += 1.5
    a.bridge.update_paths(lossy, JURIS, cluster.now)
    route = a.bridge.legs["B"].route
    assert route is not None and route.primary.relay == "R" and route.secondary is None
    assert a.bridge.legs["B"].chooser.switches == 1  # type: ignore[union-attr]
    before = r.bridge.stats.relayed
    bob.rtp.clear()
    publish(50)
    assert [p[12:] for p in bob.rtp] == sent[-50:]  # all through R now, in order
    assert r.bridge.stats.relayed - before == 50
    assert a.bridge.legs["B"].paths_used == {("A", "B"), ("A", "R", "B")}

    # R relays only between its trunk peers, and only from the envelope's source
    refused = r.bridge.stats.envelopes_refused
    assert r.bridge.receive_envelope(wrap(b"B", b"B", b"\x80" * 40, False), ADDR["A"], 0.0)
    assert r.bridge.receive_envelope(wrap(b"A", b"Z", b"\x80" * 40, False), ADDR["A"], 0.0)
    assert r.bridge.stats.envelopes_refused == refused + 2
    assert not r.bridge.receive_envelope(wrap(b"A", b"B", b"\x80" * 40, False),
                                         ("127.0.0.1", 9), 0.0)


VP8 = TrackAnnounce("room", "alice:1:1", "alice", "video", "VP8", 90000, None, 96, (),
                    ("nack", "nack pli"), ())


@pytest.mark.parametrize("ann", [VP8, OPUS_TRACK], ids=["video", "audio (no nack negotiated)"])
def test_trunk_loss_is_repaired_hop_by_hop(tmp_path: Path, ann: TrackAnnounce) -> None:
    cluster = Cluster(tmp_path)
    a, b = cluster.nodes["A"], cluster.nodes["B"]
    bob = published_to_bob(cluster, ann)
    cluster.drop_direct = 0.05
    a.bridge.own_links(0.0)  # the media loss window starts here
    sent = []
    for seq in range(200):
        payload = struct.pack("!I", seq) * 25
        a.plane.on_rtp("alice", struct.pack("!BBHII", 0x80, ann.payload_type, seq, seq * 3000,
                                            99) + payload, cluster.now)
        sent.append(payload)
        cluster.deliver()
    assert cluster.dropped >= 5 and a.bridge.legs["B"].nacks_sent == 0
    assert b.bridge.legs["A"].nacks_sent >= 1
    # media and the repairs share the lossy link, so a repair can be lost too; most are not
    got = {p[12:] for p in bob.rtp}
    assert len(got) == len(bob.rtp)  # no duplicates
    assert len(sent) - len(got) < cluster.dropped / 2
    # served from the trunk's packet cache (exact bytes), not by the forwarder
    assert a.bridge.legs["B"].retransmits >= cluster.dropped / 2
    assert a.plane.forwarder.counters.nack_served == 0
    # the sender sees its flow's loss in the peer's NACKs, long before probes would show it
    own = a.bridge.own_links(0.5)[("A", "B")]
    assert 0.02 < own.loss < 0.2


def test_eea_room_media_never_touches_a_non_eea_router(tmp_path: Path) -> None:
    """R is in the US: however lossy the direct link, an ``eea`` room's media stays on EEA
    routers (counted per node: R relays nothing, and A's flow never names R)."""
    cluster = Cluster(tmp_path)
    a, b, r = (cluster.nodes[n] for n in "ABR")
    for node in (a, b):
        node.rooms.rooms["room"] = Room("eea")
    bob = opus_to_bob(cluster)
    juris = {"A": "EEA", "B": "EEA", "R": "US"}
    lossy = {("A", "B"): LinkState(0.30, 20.0), ("A", "R"): LinkState(0.0, 1.0),
             ("R", "B"): LinkState(0.0, 1.0)}
    cluster.drop_direct = 0.25
    for step in range(20):
        a.bridge.update_paths(lossy, juris, cluster.now + step)
        a.plane.on_rtp("alice", struct.pack("!BBHII", 0x80, 111, step, step * 960, 77)
                       + b"x" * 100, cluster.now)
        cluster.deliver()
    per_node = {n: cluster.nodes[n].bridge.stats.relayed for n in "ABR"}
    assert per_node["R"] == 0 and r.bridge.stats.envelopes_refused == 0
    assert all(path == ("A", "B") for path in a.bridge.legs["B"].paths_used)
    assert len(bob.rtp) > 0


def test_loss_on_either_side_of_a_relay_is_repaired_on_that_leg(tmp_path: Path) -> None:
    """The flow A -> B goes through R. Loss on R -> B: B asks R, R re-sends from its cache
    (A never hears of it). Loss on A -> R: R sees the gap in the clear RTP header inside the
    envelope and asks A, then passes the repair on. A repair lost too is asked for again.
    Audio without negotiated nack, every payload delivered exactly once."""
    cluster = Cluster(tmp_path)
    a, b, r = (cluster.nodes[n] for n in "ABR")
    bob = opus_to_bob(cluster)
    clean = {(x, y): LinkState(0.0, 10.0) for x in "ABR" for y in "ABR" if x != y}
    lossy = clean | {("A", "B"): LinkState(0.5, 10.0), ("B", "A"): LinkState(0.5, 10.0)}
    a.bridge.update_paths(lossy, JURIS, cluster.now)
    a.bridge.update_paths(lossy, JURIS, cluster.now + 1.5)
    route = a.bridge.legs["B"].route
    assert route is not None and route.primary.relay == "R" and route.secondary is None
    copies: dict[bytes, int] = {}
    lossy_leg, lost_copies = ("R", "B"), 1

    def drop(src: str, dst: str, data: bytes) -> bool:
        """Every 7th envelope on the lossy leg, and its first ``lost_copies - 1`` repairs."""
        if (src, dst) != lossy_leg or data[0] != 0xE7:
            return False
        first = data not in copies
        copies[data] = copies.get(data, 0) + 1
        if first:
            copies[data] += 1000 * (len(copies) % 7 == 0)
        return copies[data] > 1000 and copies[data] - 1000 <= lost_copies

    cluster.drop = drop
    sent: list[bytes] = []
    # the last phase is a short clean tail: retries ride on the stream's next packets
    for leg, losses, count in ((("R", "B"), 1, 100), (("A", "R"), 1, 100),
                               (("R", "B"), 2, 100), (("A", "B"), 0, 5)):
        lossy_leg, lost_copies = leg, losses
        copies.clear()
        for _ in range(count):
            seq = len(sent)
            payload = struct.pack("!I", seq) * 20
            a.plane.on_rtp("alice", struct.pack("!BBHII", 0x80, 111, seq, seq * 960, 77)
                           + payload, cluster.now)
            sent.append(payload)
            cluster.deliver()
            cluster.now += 0.02  # 50 packets a second: a lost repair is asked for again
        cluster.deliver()
    assert cluster.dropped >= 14 * 4
    assert sorted(p[12:] for p in bob.rtp) == sorted(sent)  # every payload, exactly once
    # R -> B losses: B asked R, R served them (lost repairs asked for again); A -> R losses:
    # R asked A, A served them
    assert b.bridge.legs["R"].nacks_sent >= 14 * 3 and r.bridge.legs["B"].retransmits >= 14 * 3
    assert r.bridge.legs["A"].nacks_sent >= 14 and a.bridge.legs["R"].retransmits >= 14
    assert b.bridge.legs["A"].nacks_sent == 0 and a.bridge.legs["B"].retransmits == 0
    assert r.bridge.legs["B"].cache_misses == 0
    # idle flows are forgotten by the second sweep, relay gap state with them
    assert len(r.bridge.relay_gaps.streams()) == 1
    r.bridge.expire_caches()
    r.bridge.expire_caches()
    assert len(r.bridge.legs["B"].cache) == 0 and r.bridge.relay_gaps.streams() == []


def test_presence_crosses_the_trunk_and_leaves_with_it(tmp_path: Path) -> None:
    """Participants on one router show up, by name, in the same room on the other; they go
    when they leave and when the trunk ends; their chat crosses, nobody else's."""
    cluster = Cluster(tmp_path)
    a, b, r = (cluster.nodes[n] for n in "ABR")
    a.rooms.people[:] = [("alice", "Alice"), ("anon", None)]
    for _ in range(3):
        cluster.step()
    assert b.rooms.remote_people == {("A", "alice"): "Alice", ("A", "anon"): None}
    assert r.rooms.remote_people == {}  # R serves no participant of the room
    assert a.rooms.remote_people == {}  # B has nobody to announce

    a.rooms.people[:] = [("alice", "Alice")]
    b.rooms.people[:] = [("bob", "Bob")]
    for node in (a, b):
        node.bridge.sync(cluster.now)  # the driver's tick
    cluster.step()
    assert b.rooms.remote_people == {("A", "alice"): "Alice"}
    assert a.rooms.remote_people == {("B", "bob"): "Bob"}

    # chat crosses too, named by the presence the peer announced; nobody else can speak
    a.rooms.chat_out.append(("room", "alice", "Alice", "hello"))
    a.rooms.chat_out.append(("room", "mallory", "Mallory", "spoofed"))  # not announced
    a.bridge.sync(cluster.now)
    cluster.step()
    assert b.rooms.chat_in == [("alice", "Alice", "hello")] and a.rooms.chat_out == []
    b.bridge.on_message("A", ChatRelay("room", "mallory", "spoofed"), cluster.now)
    assert b.rooms.chat_in == [("alice", "Alice", "hello")]
    assert b.bridge.stats.chat_refused == 1

    b.bridge.leg_down("A", cluster.now)
    assert b.rooms.remote_people == {}


def test_a_packet_lost_as_the_path_changes_is_found_on_the_other_path(tmp_path: Path) -> None:
    """Packet 5 goes direct and is lost; packet 6 already goes through R. B asks R (the hop
    packet 6 came from); R never carried 5 and asks A; A finds 5 in its direct leg's cache and
    sends it through R as an envelope."""
    cluster = Cluster(tmp_path)
    a, b, r = (cluster.nodes[n] for n in "ABR")
    bob = opus_to_bob(cluster)
    direct_rtp = 0

    def drop(src: str, dst: str, data: bytes) -> bool:
        nonlocal direct_rtp
        if (src, dst) != ("A", "B") or 192 <= data[1] <= 223:
            return False
        direct_rtp += 1
        return direct_rtp == 6  # packet 5

    cluster.drop = drop
    clean = {(x, y): LinkState(0.0, 10.0) for x in "ABR" for y in "ABR" if x != y}
    lossy = clean | {("A", "B"): LinkState(0.5, 10.0), ("B", "A"): LinkState(0.5, 10.0)}
    sent: list[bytes] = []
    for seq in range(12):
        if seq == 6:  # the switch to R, between packets 5 and 6
            a.bridge.update_paths(lossy, JURIS, cluster.now)
            a.bridge.update_paths(lossy, JURIS, cluster.now + 1.5)
        payload = struct.pack("!I", seq) * 20
        a.plane.on_rtp("alice", struct.pack("!BBHII", 0x80, 111, seq, seq * 960, 77) + payload,
                       cluster.now)
        sent.append(payload)
        cluster.deliver()
    assert cluster.dropped == 1
    assert sorted(p[12:] for p in bob.rtp) == sorted(sent)
    assert r.bridge.legs["B"].cache_misses == 1 and r.bridge.legs["A"].nacks_sent == 1
    assert a.bridge.legs["R"].retransmits == 1 and b.bridge.legs["A"].nacks_sent == 0
