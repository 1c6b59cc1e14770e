"""The etcd schema: every key name and value format Regio stores, in one place.

Values are JSON objects carrying ``"v"`` (the format version). A reader rejects a major version
it does not know with :class:`SchemaError` instead of guessing, so a rolling upgrade can
introduce ``v: 2`` safely. Encoding is deterministic (sorted keys, no spaces) so equal records
are equal bytes, which idempotent writes rely on.

Layout (everything under :data:`ROOT`)::

    /regio/v1/cluster/nodes/<node-id>     NodeRecord, bound to the node's lease
    /regio/v1/cluster/topology            the validated topology (control.topology JSON)
    /regio/v1/cluster/secrets/<which>     KeySet for "turn" or "token"
    /regio/v1/cluster/links/<src>/<dst>   LinkRecord: src's measurement of the directed link
                                          src -> dst, bound to src's lease (trunk path choice)
    /regio/v1/rooms/<room>                RoomRecord, bound to the hosting router's lease
    /regio/v1/rooms/<room>/routers/<node> RoomRouterRecord: one router serving the room (a room
                                          spans routers; see docs/architecture.md §10)
    /regio/v1/rooms/<room>/audit/<node>   RoomAuditRecord: which nodes and trunk paths a router
                                          used for the room's media (``regio audit room``)

``cluster/`` is what every process caches through a watch (``control.view``); rooms live
outside it because there are many and only placement reads them, one at a time.
No value ever contains a client address (privacy, ARCHITECTURE.md §4).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

ROOT = "/regio/v1/"
CLUSTER_PREFIX = ROOT + "cluster/"
NODES_PREFIX = CLUSTER_PREFIX + "nodes/"
TOPOLOGY_KEY = CLUSTER_PREFIX + "topology"
SECRETS_PREFIX = CLUSTER_PREFIX + "secrets/"
ROOMS_PREFIX = ROOT + "rooms/"
LINKS_PREFIX = CLUSTER_PREFIX + "links/"

FORMAT_VERSION = 1

NodeKind = Literal["router", "turn"]
NODE_KINDS: tuple[NodeKind, ...] = ("router", "turn")
SecretKind = Literal["turn", "token"]
SECRET_KINDS: tuple[SecretKind, ...] = ("turn", "token")

_NODE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ROOM_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._~-]{0,127}$")


class SchemaError(ValueError):
    """A key or value that does not follow this schema."""


def check_node_id(node_id: str) -> str:
    """Node ids become key segments: letters, digits, ``._-``, at most 64 characters."""
    if not _NODE_ID_RE.match(node_id):
        raise SchemaError(f"invalid node id {node_id!r} (use letters, digits, '.', '_', '-')")
    return node_id


def check_room(room: str) -> str:
    """Room names become key segments: URL-safe characters, at most 128."""
    if not _ROOM_RE.match(room):
        raise SchemaError(f"invalid room name {room!r}")
    return room


def node_key(node_id: str) -> str:
    return NODES_PREFIX + check_node_id(node_id)


def room_key(room: str) -> str:
    return ROOMS_PREFIX + check_room(room)


def room_routers_prefix(room: str) -> str:
    """Prefix of every router serving ``room`` (ends with ``/``, so ``a`` never matches ``ab``)."""
    return ROOMS_PREFIX + check_room(room) + "/routers/"


def room_router_key(room: str, node_id: str) -> str:
    return room_routers_prefix(room) + check_node_id(node_id)


def room_audit_prefix(room: str) -> str:
    return ROOMS_PREFIX + check_room(room) + "/audit/"


def room_audit_key(room: str, node_id: str) -> str:
    """A router's audit record of a room spanning routers (who handled its media, how)."""
    return room_audit_prefix(room) + check_node_id(node_id)


def link_key(src: str, dst: str) -> str:
    """The key of ``src``'s measurement of the directed link ``src -> dst``."""
    return LINKS_PREFIX + check_node_id(src) + "/" + check_node_id(dst)


def link_of(key: str) -> tuple[str, str] | None:
    """``(src, dst)`` of a link key, or None for any other key."""
    if not key.startswith(LINKS_PREFIX):
        return None
    src, sep, dst = key[len(LINKS_PREFIX):].partition("/")
    if not sep or not _NODE_ID_RE.match(src) or not _NODE_ID_RE.match(dst):
        return None
    return src, dst


def secrets_key(which: SecretKind) -> str:
    if which not in SECRET_KINDS:
        raise SchemaError(f"unknown secret kind {which!r}")
    return SECRETS_PREFIX + which


def node_id_of(key: str) -> str | None:
    """The node id of a node key, or None for any other key."""
    if key.startswith(NODES_PREFIX):
        return key[len(NODES_PREFIX):] or None
    return None


def _encode(kind: str, body: Mapping[str, Any]) -> bytes:
    return json.dumps(
        {"v": FORMAT_VERSION, "type": kind, **body}, sort_keys=True, separators=(",", ":")
    ).encode()


def _decode(kind: str, raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{kind}: not JSON") from exc
    if not isinstance(data, dict):
        raise SchemaError(f"{kind}: not a JSON object")
    if data.get("v") != FORMAT_VERSION:
        raise SchemaError(f"{kind}: unsupported format version {data.get('v')!r}")
    if data.get("type") != kind:
        raise SchemaError(f"expected a {kind}, found {data.get('type')!r}")
    return data


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """A public listener of a node (the node's own address, never a client's)."""

    protocol: str
    """``udp`` (media/STUN/TURN), ``tcp``, ``tls``, ``wss`` (signaling), ``quic`` (trunks)."""
    host: str
    port: int

    def to_json(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "host": self.host, "port": self.port}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeAddress:
        return cls(str(data["protocol"]), str(data["host"]), int(data["port"]))


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """What a node publishes about itself under its lease."""

    node_id: str
    kind: NodeKind
    region: str
    jurisdiction: str
    addresses: tuple[NodeAddress, ...]
    capacity: int
    """How much load the node accepts (rooms for routers, allocations for TURN), all workers."""
    load: int
    """Current load in the same unit as ``capacity``."""
    draining: bool
    """True once the node drains: it keeps what it has but gets nothing new."""
    version: str
    """Software version."""
    started_at: float
    """Unix time the process started; with ``instance`` it orders competing claims."""
    instance: str
    """Random id of the claiming process: tells two processes with one node id apart."""
    load_detail: Mapping[str, float] = field(default_factory=dict)
    """Named load figures beside ``load`` (``forwarded_pps``, ``relayed_pps``, ...), for
    operators and dashboards; placement reads only ``load``."""

    def __post_init__(self) -> None:
        check_node_id(self.node_id)
        if self.kind not in NODE_KINDS:
            raise SchemaError(f"unknown node kind {self.kind!r}")

    @property
    def claim_order(self) -> tuple[float, str]:
        """Newer claims sort higher; the newer process wins a node id (fencing)."""
        return (self.started_at, self.instance)

    @property
    def load_ratio(self) -> float:
        return self.load / self.capacity if self.capacity > 0 else float("inf")

    def with_changes(self, **changes: Any) -> NodeRecord:
        return replace(self, **changes)

    def encode(self) -> bytes:
        return _encode(
            "node",
            {
                "node_id": self.node_id,
                "kind": self.kind,
                "region": self.region,
                "jurisdiction": self.jurisdiction,
                "addresses": [a.to_json() for a in self.addresses],
                "capacity": self.capacity,
                "load": self.load,
                "draining": self.draining,
                "software_version": self.version,
                "started_at": self.started_at,
                "instance": self.instance,
                "load_detail": dict(self.load_detail),
            },
        )

    @classmethod
    def decode(cls, raw: bytes) -> NodeRecord:
        d = _decode("node", raw)
        try:
            return cls(
                node_id=str(d["node_id"]),
                kind=d["kind"],
                region=str(d["region"]),
                jurisdiction=str(d["jurisdiction"]),
                addresses=tuple(NodeAddress.from_json(a) for a in d["addresses"]),
                capacity=int(d["capacity"]),
                load=int(d["load"]),
                draining=bool(d["draining"]),
                version=str(d["software_version"]),
                started_at=float(d["started_at"]),
                instance=str(d["instance"]),
                load_detail={str(k): float(v) for k, v in d.get("load_detail", {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"node record: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RoomRecord:
    """Where a room's media is handled."""

    room: str
    router: str
    """Node id of the room's first router (every router serving the room has its own key
    under ``routers/``: docs/architecture.md §10)."""
    region: str
    policy: str
    """``eea`` (strict residency) or ``nearest`` (ARCHITECTURE.md §4)."""
    created_at: float
    mode: str = "sfu"
    """``sfu`` (media through the router) or ``p2p`` (router relays signaling only); a room
    keeps the mode it was created with, like its policy."""

    def encode(self) -> bytes:
        return _encode(
            "room",
            {
                "room": self.room,
                "router": self.router,
                "region": self.region,
                "policy": self.policy,
                "created_at": self.created_at,
                "mode": self.mode,
            },
        )

    @classmethod
    def decode(cls, raw: bytes) -> RoomRecord:
        d = _decode("room", raw)
        try:
            return cls(str(d["room"]), str(d["router"]), str(d["region"]), str(d["policy"]),
                       float(d["created_at"]), str(d.get("mode", "sfu")))
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"room record: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RoomRouterRecord:
    """One router serving part of a room that spans routers (docs/architecture.md §10).

    Written by whoever assigns a participant of the room to ``router`` (the front door), and
    removed when that router's share of the room ends. Readers ignore records of routers that
    are not live in the cluster view, so a dead router drops out of every room at once.
    """

    room: str
    router: str
    region: str
    jurisdiction: str
    since: float
    """Unix time the router joined the room."""

    def __post_init__(self) -> None:
        check_room(self.room)
        check_node_id(self.router)

    def encode(self) -> bytes:
        return _encode("room_router", {"room": self.room, "router": self.router,
                                       "region": self.region, "jurisdiction": self.jurisdiction,
                                       "since": self.since})

    @classmethod
    def decode(cls, raw: bytes) -> RoomRouterRecord:
        d = _decode("room_router", raw)
        try:
            return cls(str(d["room"]), str(d["router"]), str(d["region"]),
                       str(d["jurisdiction"]), float(d["since"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"room router record: {exc}") from exc


@dataclass(frozen=True, slots=True)
class AuditHop:
    """A node on a trunk path, as it was when the path was used."""

    node: str
    region: str
    jurisdiction: str


@dataclass(frozen=True, slots=True)
class RoomAuditRecord:
    """What one router did with a room's media (``regio audit room``): the router itself and
    every trunk path its media to other routers took, relays included. No addresses, no
    participant names. Bound to the router's lease and deleted when the room ends on that
    router: the audit answers for live rooms, and etcd does not grow with past ones."""

    room: str
    node: str
    region: str
    jurisdiction: str
    paths: tuple[tuple[AuditHop, ...], ...]
    updated_at: float

    def __post_init__(self) -> None:
        check_room(self.room)
        check_node_id(self.node)

    def encode(self) -> bytes:
        return _encode("room_audit", {
            "room": self.room, "node": self.node, "region": self.region,
            "jurisdiction": self.jurisdiction, "updated_at": self.updated_at,
            "paths": [[[h.node, h.region, h.jurisdiction] for h in path] for path in self.paths],
        })  # fmt: skip

    @classmethod
    def decode(cls, raw: bytes) -> RoomAuditRecord:
        d = _decode("room_audit", raw)
        try:
            paths = tuple(tuple(AuditHop(str(h[0]), str(h[1]), str(h[2])) for h in path)
                          for path in d["paths"])
            for path in paths:
                for hop in path:
                    check_node_id(hop.node)
            return cls(str(d["room"]), str(d["node"]), str(d["region"]),
                       str(d["jurisdiction"]), paths, float(d["updated_at"]))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SchemaError(f"room audit record: {exc}") from exc


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """A router's measurement of one directed link to another router (from its probes)."""

    src: str
    dst: str
    loss: float
    """Fraction of probes lost over the measurement window, 0..1."""
    rtt_ms: float
    """Smoothed round-trip time in milliseconds."""
    jitter_ms: float
    """RFC 3550-style interarrival jitter of the probes, in milliseconds."""
    samples: int
    """Probes sent in the window the figures come from."""
    measured_at: float
    """Unix time of the measurement."""

    def __post_init__(self) -> None:
        check_node_id(self.src)
        check_node_id(self.dst)
        if not 0.0 <= self.loss <= 1.0:
            raise SchemaError(f"link loss {self.loss!r} is outside 0..1")
        if self.rtt_ms < 0 or self.jitter_ms < 0 or self.samples < 0:
            raise SchemaError("link figures must not be negative")

    def encode(self) -> bytes:
        return _encode("link", {"src": self.src, "dst": self.dst, "loss": self.loss,
                                "rtt_ms": self.rtt_ms, "jitter_ms": self.jitter_ms,
                                "samples": self.samples, "measured_at": self.measured_at})

    @classmethod
    def decode(cls, raw: bytes) -> LinkRecord:
        d = _decode("link", raw)
        try:
            return cls(str(d["src"]), str(d["dst"]), float(d["loss"]), float(d["rtt_ms"]),
                       float(d["jitter_ms"]), int(d["samples"]), float(d["measured_at"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"link record: {exc}") from exc


@dataclass(frozen=True, slots=True)
class SecretKey:
    """One key of a rotating secret."""

    kid: str
    """Key id, carried in what the key signs so verifiers pick the right key."""
    secret: str
    """URL-safe base64 of the key bytes."""
    created_at: float
    expires_at: float | None
    """None while current; set to rotation time + overlap when superseded."""

    def valid_at(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {"kid": self.kid, "secret": self.secret, "created_at": self.created_at,
                "expires_at": self.expires_at}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SecretKey:
        exp = d.get("expires_at")
        return cls(str(d["kid"]), str(d["secret"]), float(d["created_at"]),
                   None if exp is None else float(exp))


@dataclass(frozen=True, slots=True)
class KeySet:
    """A secret's current key plus superseded keys still inside their overlap window."""

    which: SecretKind
    current: str
    """Key id of the key to sign/mint with."""
    keys: tuple[SecretKey, ...]

    def key(self, kid: str) -> SecretKey | None:
        return next((k for k in self.keys if k.kid == kid), None)

    @property
    def current_key(self) -> SecretKey:
        key = self.key(self.current)
        if key is None:
            raise SchemaError(f"{self.which} key set: current key {self.current!r} missing")
        return key

    def valid_keys(self, now: float) -> dict[str, SecretKey]:
        """Every key a verifier accepts at ``now``, by key id."""
        return {k.kid: k for k in self.keys if k.kid == self.current or k.valid_at(now)}

    def encode(self) -> bytes:
        return _encode("keyset", {"which": self.which, "current": self.current,
                                  "keys": [k.to_json() for k in self.keys]})

    @classmethod
    def decode(cls, raw: bytes) -> KeySet:
        d = _decode("keyset", raw)
        try:
            which = d["which"]
            if which not in SECRET_KINDS:
                raise SchemaError(f"unknown secret kind {which!r}")
            ks = cls(which, str(d["current"]), tuple(SecretKey.from_json(k) for k in d["keys"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"key set: {exc}") from exc
        ks.current_key  # noqa: B018 - validates that the current key is present
        return ks


def encode_topology(topology_json: Mapping[str, Any]) -> bytes:
    """The stored form of ``Topology.to_json()``."""
    return _encode("topology", {"topology": dict(topology_json)})


def decode_topology(raw: bytes) -> dict[str, Any]:
    """The ``Topology.to_json()`` dict stored by :func:`encode_topology`."""
    d = _decode("topology", raw)
    topo = d.get("topology")
    if not isinstance(topo, dict):
        raise SchemaError("topology: missing body")
    return topo
