"""``regio cluster init|status|up`` and ``regio secrets rotate|new-key|seal``."""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
from pathlib import Path
from typing import Any

import trio

from control import schema
from control.bootstrap import init_cluster
from control.cli_common import add_etcd_arguments, run_with_etcd
from control.clierror import CliError
from control.etcd import EtcdClient, EtcdError
from control.localetcd import LocalEtcdError
from control.schema import NodeRecord, SchemaError
from control.secrets import DEFAULT_OVERLAP, Rotation, rotate
from control.topology import Topology, TopologyError, load_topology


def add_commands(subparsers: Any) -> None:
    cluster = subparsers.add_parser("cluster", help="cluster-wide state in etcd; local clusters")
    sub = cluster.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)

    init = sub.add_parser("init", help="write a topology file (and initial secrets) to etcd")
    add_etcd_arguments(init, required=True)
    init.add_argument("--topology", metavar="FILE", required=True, help="topology TOML file")
    init.set_defaults(handler=cmd_init)

    status = sub.add_parser("status", help="nodes by region with load and state")
    add_etcd_arguments(status, required=True)
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(handler=cmd_status)

    up = sub.add_parser("up", help="run a local multi-region cluster on 127.0.0.1")
    up.add_argument("--topology", metavar="FILE", required=True, help="topology TOML file")
    up.add_argument("--base-port", metavar="N", type=int,
                    help="etcd on N and N+1, front door on N+10, nodes from N+100 "
                    "(default: free ports)")
    up.add_argument("--trusted-proxy", metavar="CIDR", action="append", default=[],
                    help="proxy whose X-Forwarded-For the front door believes (repeatable)")
    up.add_argument("--json", action="store_true", help="print JSON lines (one 'ready' line)")
    up.add_argument("--drain-deadline", metavar="SECONDS", type=float, default=10.0,
                    help="how long nodes may drain on shutdown (default 10)")
    up.add_argument("--etcd-binary", metavar="PATH", help="etcd binary (default /usr/bin/etcd)")
    up.add_argument("--kinds", metavar="KIND[,KIND]", default="router,turn,frontdoor",
                    help="which of router, turn, frontdoor to start (default all)")
    from control.cli_hosts import add_hosts_arguments, add_hosts_commands

    add_hosts_arguments(up)
    up.set_defaults(handler=cmd_up)
    add_hosts_commands(sub)

    secrets = subparsers.add_parser("secrets", help="TURN and join-token secrets")
    ssub = secrets.add_subparsers(dest="secrets_command", metavar="ACTION", required=True)
    rot = ssub.add_parser("rotate", help="add a new current key; keep the old one for --overlap")
    add_etcd_arguments(rot)
    rot.add_argument("--overlap", metavar="SECONDS", type=float, default=DEFAULT_OVERLAP,
                     help=f"how long the previous key stays valid (default {DEFAULT_OVERLAP:g})")
    new_key = ssub.add_parser("new-key", help="write a new secrets key file (mode 0600)")
    new_key.add_argument("file", metavar="FILE", help="where to write it (must not exist)")
    new_key.set_defaults(handler=cmd_new_key)
    seal = ssub.add_parser("seal", help="seal secrets an older version stored in clear")
    add_etcd_arguments(seal)
    seal.set_defaults(handler=cmd_seal)
    rot.add_argument("--which", choices=["turn", "token", "all"], default="all",
                     help="which secret to rotate (default all)")
    rot.set_defaults(handler=cmd_rotate)
    ca = ssub.add_parser("ca", help="create the cluster CA for router trunks (key stays in a "
                         "file, never in etcd)")
    ca.add_argument("--dir", required=True, help="directory for ca.pem and ca.key (mode 0600)")
    ca.set_defaults(handler=cmd_ca)
    issue = ssub.add_parser("issue", help="issue a router's trunk certificate from the CA")
    issue.add_argument("--dir", required=True, help="the CA directory (see `secrets ca`)")
    issue.add_argument("--node", required=True, help="node id the certificate names")
    issue.add_argument("--out", help="where to write NODE.pem and NODE.key (default DIR/nodes)")
    issue.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    issue.set_defaults(handler=cmd_issue)


def _load(path: str) -> Topology:
    try:
        return load_topology(path)
    except TopologyError as exc:
        raise CliError(str(exc)) from None


def cmd_init(args: argparse.Namespace) -> int:
    topology = _load(args.topology)  # validated before anything is written

    async def run(client: EtcdClient) -> None:
        result = await init_cluster(client, topology)
        state = "written" if result.topology_changed else "unchanged"
        print(f"topology {state}: {len(topology.regions)} regions, "
              f"{len(topology.jurisdictions)} jurisdictions")
        for kind in result.secrets_created:
            print(f"{kind} secret created")

    run_with_etcd(args, run)
    return 0


async def _status(client: EtcdClient) -> dict[str, Any]:
    revision, kvs = await client.get_prefix(schema.NODES_PREFIX)
    topo_kv = await client.get(schema.TOPOLOGY_KEY)
    topology = None
    if topo_kv is not None:
        try:
            topology = Topology.from_json(schema.decode_topology(topo_kv.value))
        except (SchemaError, KeyError, TypeError, ValueError):
            topology = None
    regions: dict[str, dict[str, Any]] = {}
    if topology is not None:
        for region in topology.regions.values():
            regions[region.name] = {"jurisdiction": region.jurisdiction, "nodes": []}
    now = time.time()
    for kv in kvs:
        try:
            node = NodeRecord.decode(kv.value)
        except SchemaError:
            continue
        entry = regions.setdefault(node.region, {"jurisdiction": node.jurisdiction, "nodes": []})
        entry["nodes"].append({
            "node": node.node_id, "kind": node.kind, "load": node.load,
            "capacity": node.capacity, "state": "draining" if node.draining else "ready",
            "version": node.version, "uptime": round(max(now - node.started_at, 0.0), 1),
            "addresses": [a.to_json() for a in node.addresses],
        })
    return {"revision": revision, "initialised": topology is not None,
            "regions": dict(sorted(regions.items()))}


def cmd_status(args: argparse.Namespace) -> int:
    status = run_with_etcd(args, _status)
    if args.json:
        print(json.dumps(status))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Regio cluster (etcd revision {status['revision']})")
    for column in ("region", "jurisdiction", "node", "kind", "load", "state", "version",
                   "uptime"):
        table.add_column(column)
    for name, region in status["regions"].items():
        if not region["nodes"]:
            table.add_row(name, region["jurisdiction"], "-", "-", "-", "no nodes", "-", "-")
        for n in sorted(region["nodes"], key=lambda n: (n["kind"], n["node"])):
            table.add_row(name, region["jurisdiction"], n["node"], n["kind"],
                          f"{n['load']}/{n['capacity']}", n["state"], n["version"],
                          f"{n['uptime']:.0f}s")
    console = Console()
    console.print(table)
    if not status["initialised"]:
        console.print("no topology in etcd yet: run `regio cluster init`")
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    if args.overlap < 0:
        raise CliError("--overlap must not be negative")
    kinds: tuple[schema.SecretKind, ...] = (
        schema.SECRET_KINDS if args.which == "all" else (args.which,)
    )

    async def run(client: EtcdClient) -> list[Rotation]:
        return [await rotate(client, kind, args.overlap) for kind in kinds]

    for r in run_with_etcd(args, run):
        if r.previous is None:
            print(f"{r.which}: created key {r.current}")
        else:
            print(f"{r.which}: new current key {r.current}; {r.previous} valid for "
                  f"{args.overlap:g} s more")
    return 0


def cmd_ca(args: argparse.Namespace) -> int:
    from control.cluster_ca import CA_CERT_FILE, create_ca

    directory = Path(args.dir)
    try:
        created = create_ca(directory)
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from None
    state = "created" if created else "already exists"
    print(f"cluster CA {state}: {directory / CA_CERT_FILE} (key file mode 0600)")
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    from control.cluster_ca import issue_node_certificate

    if not 1 <= args.days <= 3650:
        raise CliError("--days must be 1-3650")
    try:
        creds = issue_node_certificate(Path(args.dir), args.node,
                                       Path(args.out) if args.out else Path(args.dir) / "nodes",
                                       days=args.days)
    except SchemaError as exc:
        raise CliError(f"--node: {exc}") from None
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(f"--trunk-cert {creds.cert} --trunk-key {creds.key} --trunk-ca {creds.ca}")
    return 0


def cmd_new_key(args: argparse.Namespace) -> int:
    from control.secretbox import SecretBox, write_key_file

    try:
        path = write_key_file(args.file)
    except OSError as exc:
        raise CliError(f"{args.file}: {exc.strerror or exc}") from None
    print(f"secrets key {SecretBox.from_file(path).key_id} written to {path}")
    return 0


def cmd_seal(args: argparse.Namespace) -> int:
    from control.secrets import seal_stored

    sealed = run_with_etcd(args, seal_stored)
    print(f"sealed: {', '.join(sealed)}" if sealed else "nothing stored in clear")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from control.cluster_up import ClusterUp, ClusterUpConfig

    topology = _load(args.topology)
    if args.base_port is not None and not 1024 <= args.base_port <= 65535 - 200:
        raise CliError("--base-port must be between 1024 and 65335")
    for cidr in args.trusted_proxy:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise CliError(f"--trusted-proxy: not a CIDR: {cidr!r}") from None
    kinds = frozenset(k.strip() for k in args.kinds.split(",") if k.strip())
    unknown = kinds - {"router", "turn", "frontdoor"}
    if unknown:
        raise CliError(f"--kinds: unknown kind {sorted(unknown)[0]!r} "
                       "(use router, turn, frontdoor)")
    if args.drain_deadline < 0:
        raise CliError("--drain-deadline must not be negative")
    config = ClusterUpConfig(
        topology=topology,
        base_port=args.base_port,
        trusted_proxies=tuple(args.trusted_proxy),
        json=args.json,
        drain_deadline=args.drain_deadline,
        etcd_binary=args.etcd_binary,
        kinds=kinds,
    )

    def out(line: str) -> None:
        print(line, flush=True)

    try:
        if args.hosts:
            from control.cli_hosts import run_hosts_cluster

            if args.base_port is not None:
                raise CliError("--base-port does not apply to --hosts (every host has the "
                               "same fixed ports)")
            return run_hosts_cluster(config, args.state_dir, out)
        return trio.run(ClusterUp(config, out).run)
    except LocalEtcdError as exc:
        raise CliError(f"cannot start etcd: {exc}") from None
    except EtcdError as exc:
        raise CliError(f"etcd: {exc}") from None
    except KeyboardInterrupt:  # pragma: no cover - signals are handled inside
        sys.stderr.write("interrupted\n")
        return 130
