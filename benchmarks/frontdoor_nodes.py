"""A helper process (``regio bench frontdoor``) registering node records with real leases.

Nodes are registered through ``control.registry``, exactly as routers and TURN nodes do, but no
router or TURN server stands behind them: enough for measuring the front door alone. Tests that
need usable nodes start real ones (``LocalFrontdoorCluster.add_router`` / ``add_turn``).

``python -m benchmarks.frontdoor_nodes --etcd URL --ttl 2 NODE_JSON...`` where each NODE_JSON is
``{"node_id", "kind", "region", "jurisdiction", "addresses": [[proto, host, port]...],
"capacity"}``. Prints ``{"event": "registered", "nodes": [...]}`` once all are in etcd and
keeps them alive until killed (SIGKILL: leases expire; SIGTERM: deregistered).
"""

from __future__ import annotations

import argparse
import json
import signal

import trio

from control.etcd import EtcdClient, EtcdConfig
from control.registry import NodeRegistration, RegistryConfig, new_record
from control.schema import NodeAddress


async def main(args: argparse.Namespace) -> None:
    async with EtcdClient(EtcdConfig.from_urls(args.etcd, timeout=1.0)) as client:
        registrations = []
        for spec in map(json.loads, args.nodes):
            record = new_record(
                spec["node_id"], spec["kind"], spec["region"], spec["jurisdiction"],
                addresses=tuple(NodeAddress(p, h, int(port)) for p, h, port in spec["addresses"]),
                capacity=int(spec.get("capacity", 100)),
            )
            registrations.append(NodeRegistration(client, record, RegistryConfig(ttl=args.ttl)))
        async with trio.open_nursery() as nursery:
            for registration in registrations:
                await nursery.start(registration.run)
            print(json.dumps({"event": "registered",
                              "nodes": [r.record.node_id for r in registrations]}), flush=True)
            with trio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    break
            for registration in registrations:
                await registration.deregister()
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--etcd", required=True)
    parser.add_argument("--ttl", type=int, default=10)
    parser.add_argument("nodes", nargs="+")
    trio.run(main, parser.parse_args())
