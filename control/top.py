"""``regio top``: a live terminal view of the cluster from etcd and the nodes' metrics.

One frame is: regions with their nodes (state, load, sessions, packets/s out), rooms with their
routers and residency state, and trunks (routers measuring links to each other, rooms spanning
routers). :func:`collect` reads etcd and scrapes each node's ``/metrics``; :func:`build_frame`
turns two consecutive snapshots into plain rows (rates need two); :func:`render` draws them
with rich. ``--once`` prints one frame (after two scrapes ``--interval`` apart) and exits.

Residency state is judged from what etcd says: a room of policy ``eea`` must only have routers
in a restricted jurisdiction of the topology; a room whose router is no longer registered is
``orphaned`` (its clients must rejoin). Nothing here ever sees a client address.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import trio

from control import schema
from control.etcd import EtcdClient
from control.schema import LinkRecord, NodeRecord, RoomRecord, RoomRouterRecord, SchemaError

SESSION_METRICS = {"router": "regio_router_sessions", "turn": "regio_turn_allocations"}
PACKET_METRICS = {"router": "regio_router_packets_out", "turn": "regio_turn_relayed_packets"}


@dataclass(slots=True)
class Snapshot:
    """What one round of reading etcd and scraping nodes saw."""

    taken_at: float
    revision: int
    nodes: dict[str, NodeRecord]
    rooms: dict[str, RoomRecord]
    room_routers: dict[str, list[RoomRouterRecord]]
    links: list[LinkRecord]
    restricted: set[str]
    """Jurisdictions the topology marks restricted (``eea`` rooms must stay inside them)."""
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per node: metric family name -> sum over its samples (missing: scrape failed)."""


@dataclass(frozen=True, slots=True)
class NodeRow:
    region: str
    jurisdiction: str
    node: str
    kind: str
    state: str
    load: str
    sessions: str
    pps_out: str
    rooms: int


@dataclass(frozen=True, slots=True)
class RoomRow:
    room: str
    policy: str
    mode: str
    routers: str
    regions: str
    residency: str


@dataclass(frozen=True, slots=True)
class TrunkRow:
    src: str
    dst: str
    loss: str
    rtt_ms: str
    age_s: str
    rooms: int


@dataclass(frozen=True, slots=True)
class Frame:
    revision: int
    nodes: list[NodeRow]
    rooms: list[RoomRow]
    trunks: list[TrunkRow]
    violations: int
    orphaned: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def collect(client: EtcdClient, scrape_timeout: float = 1.0) -> Snapshot:
    revision, node_kvs = await client.get_prefix(schema.NODES_PREFIX)
    _, room_kvs = await client.get_prefix(schema.ROOMS_PREFIX)
    _, link_kvs = await client.get_prefix(schema.LINKS_PREFIX)
    topology = await client.get(schema.TOPOLOGY_KEY)
    restricted: set[str] = set()
    if topology is not None:
        try:
            doc = schema.decode_topology(topology.value)
            restricted = {name for name, j in doc.get("jurisdictions", {}).items()
                          if j.get("restricted")}
        except (SchemaError, AttributeError):
            pass
    nodes: dict[str, NodeRecord] = {}
    for kv in node_kvs:
        try:
            record = NodeRecord.decode(kv.value)
        except SchemaError:
            continue
        nodes[record.node_id] = record
    rooms: dict[str, RoomRecord] = {}
    room_routers: dict[str, list[RoomRouterRecord]] = {}
    for kv in room_kvs:
        # rooms/<room> is the placement; rooms/<room>/routers/<node> a spanning share.
        for decode in (RoomRecord.decode, RoomRouterRecord.decode):
            try:
                item = decode(kv.value)
            except SchemaError:
                continue
            if isinstance(item, RoomRecord):
                rooms[item.room] = item
            else:
                room_routers.setdefault(item.room, []).append(item)
            break
    links = []
    for kv in link_kvs:
        try:
            links.append(LinkRecord.decode(kv.value))
        except SchemaError:
            continue
    snapshot = Snapshot(time.time(), revision, nodes, rooms, room_routers, links, restricted)
    async with trio.open_nursery() as nursery:
        for record in nodes.values():
            url = metrics_url(record)
            if url is not None:
                nursery.start_soon(_scrape_into, snapshot.metrics, record.node_id, url,
                                   scrape_timeout)
    return snapshot


def metrics_url(record: NodeRecord) -> str | None:
    for address in record.addresses:
        if address.protocol == "metrics":
            host = f"[{address.host}]" if ":" in address.host else address.host
            return f"http://{host}:{address.port}/metrics"
    return None


async def _scrape_into(out: dict[str, dict[str, float]], node: str, url: str,
                       timeout: float) -> None:
    try:
        text = await trio.to_thread.run_sync(_fetch, url, timeout)
    except OSError:
        return
    out[node] = parse_metrics(text)


def _fetch(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read()).decode(errors="replace")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text: family name -> sum of its plain samples (counters lose ``_total``)."""
    from prometheus_client.parser import text_string_to_metric_families

    sums: dict[str, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            total = sum(s.value for s in family.samples
                        if s.name in (family.name, family.name + "_total"))
            sums[family.name] = total
    except ValueError:
        return {}
    return sums


def build_frame(current: Snapshot, previous: Snapshot | None) -> Frame:
    """Rows for one frame; packet rates from the counter change since ``previous``."""
    room_count: dict[str, int] = {}
    room_rows: list[RoomRow] = []
    violations = orphaned = 0
    for name in sorted(current.rooms):
        room = current.rooms[name]
        shares = current.room_routers.get(name, [])
        placed = {room.router: room.region} | {s.router: s.region for s in shares}
        for router in placed:
            room_count[router] = room_count.get(router, 0) + 1
        state = residency_state(room, shares, current.nodes, current.restricted)
        violations += state == "VIOLATION"
        orphaned += state == "orphaned"
        room_rows.append(RoomRow(name, room.policy, room.mode, ", ".join(sorted(placed)),
                                 ", ".join(sorted(set(placed.values()))), state))
    elapsed = current.taken_at - previous.taken_at if previous else 0.0
    node_rows = []
    for record in sorted(current.nodes.values(), key=lambda r: (r.region, r.kind, r.node_id)):
        metrics = current.metrics.get(record.node_id)
        before = previous.metrics.get(record.node_id) if previous else None
        node_rows.append(NodeRow(
            record.region, record.jurisdiction, record.node_id, record.kind,
            "draining" if record.draining else "ready", f"{record.load}/{record.capacity}",
            _metric(metrics, SESSION_METRICS.get(record.kind)),
            _rate(metrics, before, PACKET_METRICS.get(record.kind), elapsed),
            room_count.get(record.node_id, 0),
        ))
    spanning: dict[tuple[str, str], int] = {}
    for shares in current.room_routers.values():
        routers = sorted({s.router for s in shares})
        for i, a in enumerate(routers):
            for b in routers[i + 1:]:
                spanning[(a, b)] = spanning.get((a, b), 0) + 1
    trunk_rows = [
        TrunkRow(link.src, link.dst, f"{link.loss:.1%}", f"{link.rtt_ms:.1f}",
                 f"{max(current.taken_at - link.measured_at, 0):.0f}",
                 spanning.get(tuple(sorted((link.src, link.dst))), 0))  # type: ignore[arg-type]
        for link in sorted(current.links, key=lambda lk: (lk.src, lk.dst))
    ]
    measured = {tuple(sorted((lk.src, lk.dst))) for lk in current.links}
    trunk_rows += [TrunkRow(a, b, "-", "-", "-", n) for (a, b), n in sorted(spanning.items())
                   if (a, b) not in measured]
    return Frame(current.revision, node_rows, room_rows, trunk_rows, violations, orphaned)


def residency_state(room: RoomRecord, shares: list[RoomRouterRecord],
                    nodes: Mapping[str, NodeRecord], restricted: set[str]) -> str:
    """``ok``, ``VIOLATION`` (an eea room on a router outside restricted jurisdictions) or
    ``orphaned`` (its router is not registered)."""
    if room.policy == "eea":
        for share in shares:
            if share.jurisdiction not in restricted:
                return "VIOLATION"
        record = nodes.get(room.router)
        if record is not None and record.jurisdiction not in restricted:
            return "VIOLATION"
    if room.router not in nodes:
        return "orphaned"
    return "ok"


def _metric(metrics: Mapping[str, float] | None, name: str | None) -> str:
    if metrics is None:
        return "?"
    if name is None or name not in metrics:
        return "-"
    return f"{metrics[name]:.0f}"


def _rate(now: Mapping[str, float] | None, before: Mapping[str, float] | None,
          name: str | None, elapsed: float) -> str:
    if now is None or name is None or name not in now:
        return "?" if now is None else "-"
    if before is None or name not in before or elapsed <= 0:
        return "…"
    return f"{max(now[name] - before[name], 0) / elapsed:.0f}"


def render(frame: Frame) -> Any:
    """The frame as a rich renderable (a group of tables)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if frame.violations:
        summary = Text(f"residency: {frame.violations} VIOLATION(S)", style="bold red")
    else:
        summary = Text(f"residency: ok ({len(frame.rooms)} rooms)", style="green")
    if frame.orphaned:
        summary.append(f"  ·  {frame.orphaned} room(s) orphaned (router gone)", style="yellow")
    header = Text(f"regio top — etcd revision {frame.revision}  ·  ", style="bold")
    header.append_text(summary)
    nodes = Table(title="nodes", expand=True)
    for column in ("region", "jurisdiction", "node", "kind", "state", "load", "sessions",
                   "pkts/s out", "rooms"):
        nodes.add_column(column)
    for n in frame.nodes:
        nodes.add_row(n.region, n.jurisdiction, n.node, n.kind,
                      Text(n.state, style="yellow" if n.state != "ready" else ""),
                      n.load, n.sessions, n.pps_out, str(n.rooms))
    if not frame.nodes:
        nodes.add_row("-", "-", "none", "-", "-", "-", "-", "-", "-")
    rooms = Table(title="rooms", expand=True)
    for column in ("room", "policy", "mode", "routers", "regions", "residency"):
        rooms.add_column(column)
    for r in frame.rooms:
        style = {"VIOLATION": "bold red", "orphaned": "yellow"}.get(r.residency, "green")
        rooms.add_row(r.room, r.policy, r.mode, r.routers, r.regions, Text(r.residency, style))
    trunks = Table(title="trunks", expand=True)
    for column in ("from", "to", "loss", "rtt ms", "measured s ago", "rooms spanning"):
        trunks.add_column(column)
    for t in frame.trunks:
        trunks.add_row(t.src, t.dst, t.loss, t.rtt_ms, t.age_s, str(t.rooms))
    parts: list[Any] = [header, nodes, rooms]
    if frame.trunks:
        parts.append(trunks)
    return Group(*parts)


def add_top_command(subparsers: Any) -> None:
    from control.cli_common import add_etcd_arguments

    top = subparsers.add_parser(
        "top", help="live view of regions, nodes, load, rooms, trunks and residency state")
    add_etcd_arguments(top)
    top.add_argument("--interval", metavar="SECONDS", type=float, default=2.0,
                     help="refresh period (default 2)")
    top.add_argument("--once", action="store_true",
                     help="print one frame (two scrapes --interval apart) and exit")
    top.add_argument("--json", action="store_true", help="with --once: the frame as JSON")
    top.set_defaults(handler=cmd_top)


def cmd_top(args: argparse.Namespace) -> int:
    from control.cli_common import run_with_etcd
    from control.clierror import CliError

    if args.interval <= 0:
        raise CliError("--interval must be positive")
    if args.json and not args.once:
        raise CliError("--json goes with --once")

    async def once(client: EtcdClient) -> Frame:
        first = await collect(client)
        await trio.sleep(args.interval)
        return build_frame(await collect(client), first)

    async def live(client: EtcdClient) -> None:
        from rich.live import Live

        previous = await collect(client)
        with Live(render(build_frame(previous, None)), auto_refresh=False) as view:
            while True:
                await trio.sleep(args.interval)
                current = await collect(client)
                view.update(render(build_frame(current, previous)), refresh=True)
                previous = current

    if not args.once:
        with contextlib.suppress(KeyboardInterrupt):
            run_with_etcd(args, live)
        return 0
    frame = run_with_etcd(args, once)
    if args.json:
        print(json.dumps(frame.to_json()))
    else:
        from rich.console import Console

        Console().print(render(frame))
    return 1 if frame.violations else 0
