"""Which nodes a client may be given: residency first, then distance, then load.

Pure functions over a snapshot of the cluster, so the rules can be checked exhaustively by
property tests and the front door can call them without awaiting anything.

The order of decisions is the contract of ARCHITECTURE.md §4:

1. Residency filters. A client of a restricted jurisdiction only ever gets nodes of that
   jurisdiction. A room of policy ``eea`` only ever gets EEA nodes, whoever joins. A node whose
   region is unknown to the topology, or whose jurisdiction disagrees with its region's, is
   never given to anyone: a misconfigured node is not evidence of where media would go.
2. Availability filters: draining nodes and nodes at capacity are skipped.
3. Nearest region (great-circle distance from the client's country) among what is left, then
   in it a router already serving the room (one router per region until it is loaded), else
   the least-loaded node. An unknown client location makes every allowed region equally
   near, so the least-loaded node wins.
4. Nothing left: :class:`NoCapacity`. There is no fallback to a region the rules exclude —
   unlike LiveKit's and Jitsi's region selectors (REFERENCES.md).

Ties are broken by names, so a snapshot always gives the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from control.topology import Topology
from geo.locations import haversine_km
from geo.residency import EEA, ClientPlace

NodeKind = Literal["router", "turn"]
RoomPolicy = Literal["eea", "nearest"]
ROOM_POLICIES: tuple[RoomPolicy, ...] = ("eea", "nearest")


class _NodeLike(Protocol):
    """Read-only view of a node record (frozen dataclasses such as ``NodeRecord`` fit)."""

    @property
    def node_id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def region(self) -> str: ...
    @property
    def jurisdiction(self) -> str: ...
    @property
    def load(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def draining(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What selection needs to know about a node (a registry record maps onto it)."""

    node_id: str
    kind: NodeKind
    region: str
    jurisdiction: str
    load: int
    capacity: int
    draining: bool = False

    @property
    def available(self) -> bool:
        """May take something new: not draining and below capacity."""
        return not self.draining and self.load < self.capacity

    @property
    def load_ratio(self) -> float:
        return self.load / self.capacity if self.capacity > 0 else float("inf")

    @classmethod
    def from_record(cls, record: _NodeLike) -> NodeInfo:
        """From any object with the same fields, e.g. ``control.schema.NodeRecord``."""
        if record.kind not in ("router", "turn"):
            raise ValueError(f"unknown node kind {record.kind!r}")
        kind: NodeKind = "turn" if record.kind == "turn" else "router"
        return cls(
            record.node_id,
            kind,
            record.region,
            record.jurisdiction,
            int(record.load),
            int(record.capacity),
            bool(record.draining),
        )


@dataclass(frozen=True, slots=True)
class Selected:
    """A router chosen for a client."""

    node: NodeInfo
    distance_km: float | None
    """From the client's country to the node's region; None if the client's place is unknown."""

    @property
    def region(self) -> str:
        return self.node.region


@dataclass(frozen=True, slots=True)
class TurnServers:
    """TURN nodes for a client's ICE server list, nearest first (never empty)."""

    nodes: tuple[NodeInfo, ...]


@dataclass(frozen=True, slots=True)
class NoCapacity:
    """No node the rules allow can take the client: the front door answers 503."""

    kind: NodeKind
    allowed_jurisdictions: frozenset[str] | None
    """The jurisdictions that were allowed (None: any); empty when the rules exclude each other."""
    reason: str


@dataclass(frozen=True, slots=True)
class RoomAllowed:
    node: NodeInfo


@dataclass(frozen=True, slots=True)
class RoomOutsideJurisdiction:
    """The room's router is somewhere this client may not go: the front door answers 409."""

    node: NodeInfo
    client_jurisdiction: str | None
    reason: str


def allowed_jurisdictions(client: ClientPlace, policy: RoomPolicy) -> frozenset[str] | None:
    """The jurisdictions whose nodes may serve ``client`` in a room of ``policy`` (None: any)."""
    allowed: frozenset[str] | None = None
    if client.restricted:
        # A restricted client always has a jurisdiction; guard anyway: no name, no nodes.
        allowed = frozenset({client.jurisdiction}) if client.jurisdiction else frozenset()
    if policy == "eea":
        allowed = frozenset({EEA}) if allowed is None else allowed & {EEA}
    elif policy != "nearest":
        allowed = frozenset()  # an unknown policy must not widen anything
    return allowed


def node_allowed(topology: Topology, node: NodeInfo, allowed: frozenset[str] | None) -> bool:
    """Residency check of one node: consistent with the topology and in an allowed
    jurisdiction."""
    region = topology.regions.get(node.region)
    if region is None or region.jurisdiction != node.jurisdiction:
        return False
    return allowed is None or node.jurisdiction in allowed


def _ranked(
    topology: Topology,
    client: ClientPlace,
    kind: NodeKind,
    allowed: frozenset[str] | None,
    nodes: Iterable[NodeInfo],
    members: frozenset[str] = frozenset(),
) -> list[tuple[float, NodeInfo]]:
    """Allowed, available nodes of ``kind`` ordered by (distance, not a member, load ratio,
    load, names): within equally near regions a node in ``members`` comes first."""
    ranked: list[tuple[tuple[float, bool, float, int, str, str], float, NodeInfo]] = []
    for node in nodes:
        if node.kind != kind or not node.available or not node_allowed(topology, node, allowed):
            continue
        distance = (
            haversine_km(client.location, topology.regions[node.region].location)
            if client.location is not None
            else 0.0
        )
        # Regions closer than a kilometre apart count as equally near: float noise must not
        # decide between two regions in one city.
        key = (round(distance), node.node_id not in members, node.load_ratio, node.load,
               node.region, node.node_id)
        ranked.append((key, distance, node))
    ranked.sort(key=lambda item: item[0])
    return [(distance, node) for _, distance, node in ranked]


def _no_capacity(kind: NodeKind, allowed: frozenset[str] | None, policy: str) -> NoCapacity:
    if allowed is not None and not allowed:
        reason = f"room policy {policy!r} and the client's jurisdiction exclude each other"
    elif allowed is None:
        reason = f"no {kind} with capacity left"
    else:
        reason = f"no {kind} with capacity left in {', '.join(sorted(allowed))}"
    return NoCapacity(kind, allowed, reason)


def select_router(
    topology: Topology,
    client: ClientPlace,
    policy: RoomPolicy,
    nodes: Iterable[NodeInfo],
    members: Iterable[str] = (),
) -> Selected | NoCapacity:
    """The router for one participant: the nearest router their own jurisdiction and the
    room's ``policy`` allow. In the nearest region a router already serving the room
    (``members``) is preferred while it has capacity: one router per region until it is
    loaded, then the least-loaded other router of that region joins the room."""
    allowed = allowed_jurisdictions(client, policy)
    ranked = _ranked(topology, client, "router", allowed, nodes, frozenset(members))
    if not ranked:
        return _no_capacity("router", allowed, policy)
    distance, node = ranked[0]
    return Selected(node, distance if client.location is not None else None)


def select_turn(
    topology: Topology,
    client: ClientPlace,
    nodes: Iterable[NodeInfo],
    *,
    policy: RoomPolicy = "nearest",
    count: int = 2,
) -> TurnServers | NoCapacity:
    """Up to ``count`` TURN nodes for the client's ICE server list, nearest first.

    The room's policy applies too: a TURN node relays the room's media, so an ``eea`` room's
    participants only get EEA TURN nodes.
    """
    allowed = allowed_jurisdictions(client, policy)
    ranked = _ranked(topology, client, "turn", allowed, nodes)
    if not ranked or count < 1:
        return _no_capacity("turn", allowed, policy)
    return TurnServers(tuple(node for _, node in ranked[:count]))


def check_room(
    topology: Topology,
    client: ClientPlace,
    policy: RoomPolicy,
    router: NodeInfo,
) -> RoomAllowed | RoomOutsideJurisdiction:
    """May ``client`` join an existing room of ``policy`` that lives on ``router``?

    Only residency is checked: a room stays on its router even when that router drains or
    fills up (its participants are already there).
    """
    allowed = allowed_jurisdictions(client, policy)
    if node_allowed(topology, router, allowed):
        return RoomAllowed(router)
    if allowed is not None and not allowed:
        reason = f"room policy {policy!r} and the client's jurisdiction exclude each other"
    else:
        reason = f"the room's router is in {router.jurisdiction}, outside what the client may use"
    return RoomOutsideJurisdiction(router, client.jurisdiction, reason)
