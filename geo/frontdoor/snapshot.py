"""A decoded snapshot of the cluster view, rebuilt only when the view changes.

Joins run far more often than the cluster changes, so everything a join needs from the view is
decoded once per view revision: the topology, router and TURN nodes as
:class:`geo.selection.NodeInfo`, each node's signaling URL or ICE URLs, and the current
join-token and TURN keys. A join then only reads plain attributes.

Published node addresses are mapped as follows (``control.schema.NodeAddress.protocol``):

- routers: ``wss`` (else ``ws``) gives ``signaling_url`` = ``<proto>://host:port<path>``;
- TURN: ``udp`` -> ``turn:host:port?transport=udp``, ``tcp`` -> ``turn:host:port?transport=tcp``,
  ``tls`` -> ``turns:host:port?transport=tcp``;
- any kind: ``metrics`` (HTTP host:port serving ``/metrics``) is listed by
  ``GET /v1/prometheus/targets``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from control.logs import get_logger
from control.schema import KeySet, NodeAddress, NodeRecord, SchemaError, SecretKey, SecretKind
from control.topology import Topology
from geo.selection import NodeInfo

log = get_logger("geo.frontdoor.snapshot")


class ClusterSource(Protocol):
    """What the front door reads from :class:`control.view.ClusterView`."""

    @property
    def revision(self) -> int: ...

    def nodes(self) -> dict[str, NodeRecord]: ...

    def topology(self) -> Topology | None: ...

    def keyset(self, which: SecretKind) -> KeySet | None: ...


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


TURN_URL_FORMS: Mapping[str, str] = {
    "udp": "turn:{host}:{port}?transport=udp",
    "tcp": "turn:{host}:{port}?transport=tcp",
    "tls": "turns:{host}:{port}?transport=tcp",
}


def turn_urls(addresses: tuple[NodeAddress, ...]) -> tuple[str, ...]:
    """ICE server URLs of a TURN node's registered listeners, in udp, tcp, tls order."""
    urls: list[str] = []
    for protocol, form in TURN_URL_FORMS.items():
        urls += [form.format(host=_host(a.host), port=a.port)
                 for a in addresses if a.protocol == protocol]
    return tuple(urls)


def signaling_url(addresses: tuple[NodeAddress, ...], path: str) -> str | None:
    for protocol in ("wss", "ws"):
        for a in addresses:
            if a.protocol == protocol:
                return f"{protocol}://{_host(a.host)}:{a.port}{path}"
    return None


def metrics_target(addresses: tuple[NodeAddress, ...]) -> str | None:
    for a in addresses:
        if a.protocol == "metrics":
            return f"{_host(a.host)}:{a.port}"
    return None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a join reads from the cluster, at one view revision."""

    revision: int
    topology: Topology | None
    records: Mapping[str, NodeRecord]
    infos: Mapping[str, NodeInfo]
    routers: tuple[NodeInfo, ...]
    turns: tuple[NodeInfo, ...]
    signaling: Mapping[str, str | None]
    ice_urls: Mapping[str, tuple[str, ...]]
    token_key: SecretKey | None
    turn_key: SecretKey | None
    token_keyset: KeySet | None = None
    """Every join-token key (for verifying a rejoin's previous token in the overlap)."""
    router_ids: frozenset[str] = frozenset()
    """Routers that count as live: registered and not marked down by the health probes."""
    trunk_routers: tuple[NodeInfo, ...] = ()
    """Live routers that registered a trunk listener (``quic``): only these can share a room
    with other routers."""
    trunk_ids: frozenset[str] = frozenset()
    health_version: int = 0


class DownSource(Protocol):
    """Routers the front door's own probes found dead (:class:`geo.frontdoor.health.
    RouterHealth`), ahead of their lease expiring."""

    @property
    def version(self) -> int: ...

    @property
    def down(self) -> frozenset[str]: ...


def build_snapshot(
    source: ClusterSource, signaling_path: str, static_topology: Topology | None = None,
    health: DownSource | None = None,
) -> Snapshot:
    records = source.nodes()
    infos: dict[str, NodeInfo] = {}
    for node_id, record in records.items():
        # Built here rather than with NodeInfo.from_record: its protocol declares settable
        # attributes, which a frozen NodeRecord does not satisfy for mypy.
        infos[node_id] = NodeInfo(record.node_id, record.kind, record.region,
                                  record.jurisdiction, int(record.load), int(record.capacity),
                                  bool(record.draining))
    topology = static_topology if static_topology is not None else source.topology()
    down = health.down if health is not None else frozenset()
    routers = tuple(i for i in infos.values() if i.kind == "router" and i.node_id not in down)
    trunked = tuple(i for i in routers
                    if any(a.protocol == "quic" for a in records[i.node_id].addresses))
    return Snapshot(
        revision=source.revision,
        topology=topology,
        records=records,
        infos=infos,
        routers=routers,
        turns=tuple(i for i in infos.values() if i.kind == "turn"),
        signaling={n: signaling_url(r.addresses, signaling_path)
                   for n, r in records.items() if r.kind == "router"},
        ice_urls={n: turn_urls(r.addresses) for n, r in records.items() if r.kind == "turn"},
        token_key=_current(source, "token"),
        turn_key=_current(source, "turn"),
        token_keyset=source.keyset("token"),
        router_ids=frozenset(i.node_id for i in routers),
        trunk_routers=trunked,
        trunk_ids=frozenset(i.node_id for i in trunked),
        health_version=health.version if health is not None else 0,
    )


def _current(source: ClusterSource, which: SecretKind) -> SecretKey | None:
    keyset = source.keyset(which)
    if keyset is None:
        return None
    try:
        return keyset.current_key
    except SchemaError:
        return None


class SnapshotCache:
    """The latest :class:`Snapshot`, rebuilt when the source's revision moves."""

    def __init__(
        self, source: ClusterSource, signaling_path: str, static_topology: Topology | None = None,
        health: DownSource | None = None,
    ) -> None:
        self.source = source
        self.signaling_path = signaling_path
        self.static_topology = static_topology
        self.health = health
        self._snapshot: Snapshot | None = None

    def get(self) -> Snapshot:
        snapshot = self._snapshot
        health = self.health.version if self.health is not None else 0
        if (snapshot is None or snapshot.revision != self.source.revision
                or snapshot.health_version != health):
            snapshot = build_snapshot(self.source, self.signaling_path, self.static_topology,
                                      self.health)
            self._snapshot = snapshot
        return snapshot


__all__ = [
    "ClusterSource",
    "DownSource",
    "Snapshot",
    "SnapshotCache",
    "build_snapshot",
    "metrics_target",
    "signaling_url",
    "turn_urls",
]
