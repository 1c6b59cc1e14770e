"""``regio node drain``: mark a node draining so it gets no new rooms and exits when empty."""

from __future__ import annotations

import argparse
from typing import Any

import trio

from control import schema
from control.cli_common import add_etcd_arguments, run_with_etcd
from control.clierror import CliError
from control.drain import NodeNotFound, request_drain
from control.etcd import EtcdClient
from control.schema import NodeRecord, SchemaError


def add_commands(subparsers: Any) -> None:
    node = subparsers.add_parser("node", help="act on one registered node")
    sub = node.add_subparsers(dest="node_command", metavar="ACTION", required=True)
    drain = sub.add_parser("drain", help="stop giving NODE new rooms; it exits when empty")
    drain.add_argument("node", metavar="NODE", help="node id (see `regio cluster status`)")
    add_etcd_arguments(drain, required=True)
    drain.add_argument("--wait", action="store_true",
                       help="wait until the node has deregistered")
    drain.add_argument("--timeout", metavar="SECONDS", type=float, default=600.0,
                       help="how long --wait waits (default 600)")
    drain.set_defaults(handler=cmd_drain)


def cmd_drain(args: argparse.Namespace) -> int:
    try:
        schema.check_node_id(args.node)
    except SchemaError as exc:
        raise CliError(str(exc)) from None

    async def run(client: EtcdClient) -> tuple[list[NodeRecord], bool]:
        try:
            records = [await request_drain(client, args.node)]
        except NodeNotFound:
            # A node run with --workers N registers its workers as NODE-w0 ... NODE-wN-1:
            # draining the node drains them together.
            workers = await worker_ids(client, args.node)
            if not workers:
                raise CliError(f"node {args.node} is not registered") from None
            records = [await request_drain(client, w) for w in workers]
        if not args.wait:
            return records, False
        with trio.move_on_after(args.timeout):
            for record in records:
                while await client.get(schema.node_key(record.node_id)) is not None:
                    await trio.sleep(0.5)
            return records, True
        raise CliError(f"node {args.node} still registered after {args.timeout:g} s")

    records, gone = run_with_etcd(args, run)
    for record in records:
        print(f"node {record.node_id} ({record.kind}, {record.region}) is draining")
    if gone:
        print(f"node {args.node} has left the cluster")
    return 0


async def worker_ids(client: EtcdClient, node_id: str) -> list[str]:
    """Registered workers of ``node_id`` (``<node_id>-w<k>``), in worker order."""
    prefix = schema.node_key(node_id) + "-w"
    _, kvs = await client.get_prefix(prefix)
    found = []
    for kv in kvs:
        suffix = kv.key[len(prefix):]
        if suffix.isdigit():
            found.append((int(suffix), kv.key[len(schema.NODES_PREFIX):]))
    return [worker for _, worker in sorted(found)]
