"""``regio audit room ROOM``: every node that handled a spanning room's media, with its region
and jurisdiction, and the trunk paths used (from the routers' audit records in etcd; no
addresses, no participant names)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from control import schema
from control.cli_common import add_etcd_arguments, run_with_etcd
from control.clierror import CliError
from control.etcd import EtcdClient
from control.logs import get_logger
from control.schema import RoomAuditRecord, SchemaError

log = get_logger("control.audit")


def add_commands(subparsers: Any) -> None:
    audit = subparsers.add_parser("audit", help="residency audits")
    asub = audit.add_subparsers(dest="audit_command", metavar="WHAT", required=True)
    room = asub.add_parser("room", help="nodes and trunk paths that handled a room's media")
    room.add_argument("room", help="room name")
    room.add_argument("--json", action="store_true", help="one JSON object")
    add_etcd_arguments(room)
    room.set_defaults(handler=cmd_audit_room)


def summarize(room: str, records: list[RoomAuditRecord]) -> dict[str, Any]:
    """The audit report: nodes (with roles) and paths, sorted."""
    nodes: dict[str, dict[str, Any]] = {}

    def note(node: str, region: str, jurisdiction: str, role: str) -> None:
        entry = nodes.setdefault(node, {"node": node, "region": region,
                                        "jurisdiction": jurisdiction, "roles": set()})
        entry["roles"].add(role)

    paths: set[tuple[str, ...]] = set()
    for record in records:
        note(record.node, record.region, record.jurisdiction, "router")
        for path in record.paths:
            paths.add(tuple(h.node for h in path))
            for hop in path[1:-1]:
                note(hop.node, hop.region, hop.jurisdiction, "relay")
            for hop in (path[0], path[-1]):
                note(hop.node, hop.region, hop.jurisdiction, "router")
    return {
        "room": room,
        "nodes": [{**n, "roles": sorted(n["roles"])} for _, n in sorted(nodes.items())],
        "paths": [list(p) for p in sorted(paths)],
        "jurisdictions": sorted({n["jurisdiction"] for n in nodes.values()}),
    }


def cmd_audit_room(args: argparse.Namespace) -> int:
    try:
        prefix = schema.room_audit_prefix(args.room)
    except SchemaError as exc:
        raise CliError(f"room: {exc}") from None

    async def read(client: EtcdClient) -> list[RoomAuditRecord]:
        _, kvs = await client.get_prefix(prefix)
        out = []
        for kv in kvs:
            try:
                out.append(RoomAuditRecord.decode(kv.value))
            except SchemaError as exc:
                log.warning("skipping an unreadable audit record: %s", exc)
        return out

    report = summarize(args.room, run_with_etcd(args, read))
    if args.json:
        print(json.dumps(report))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not report["nodes"]:
        console.print(f"no router has recorded media of room {args.room!r} across trunks")
        return 0
    table = Table(title=f"Room {args.room}: nodes that handled its media")
    for column in ("node", "region", "jurisdiction", "roles"):
        table.add_column(column)
    for n in report["nodes"]:
        table.add_row(n["node"], n["region"], n["jurisdiction"], ", ".join(n["roles"]))
    console.print(table)
    for path in report["paths"]:
        console.print("path: " + " -> ".join(path))
    return 0


__all__ = ["add_commands", "cmd_audit_room", "summarize"]
