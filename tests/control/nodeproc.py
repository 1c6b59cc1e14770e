"""A real node process for tests: registers through ``control.registry`` and drains on SIGTERM.

Tests spawn it with ``python -m tests.control.nodeproc`` so that killing it (SIGKILL, SIGTERM)
exercises exactly what a router or TURN process will do. It prints one JSON line per event.
"""

from __future__ import annotations

import argparse
import json
import sys

import trio

from control.drain import DrainConfig, DrainController
from control.etcd import EtcdClient, EtcdConfig
from control.registry import (
    DrainRequested,
    Fenced,
    LeaseLost,
    NodeRegistration,
    Registered,
    RegistryConfig,
    new_record,
)


def say(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


async def main(args: argparse.Namespace) -> int:
    client = EtcdClient(EtcdConfig.from_urls(args.etcd, timeout=1.0))
    record = new_record(args.node_id, args.kind, args.region, args.jurisdiction,
                        capacity=args.capacity)
    registration = NodeRegistration(client, record, RegistryConfig(ttl=args.ttl))
    rooms = args.rooms

    async def report() -> None:
        async for event in registration.events():
            match event:
                case Registered(lease=lease, reregistered=again):
                    say("registered", lease=lease, reregistered=again, pid_instance=record.instance)
                case LeaseLost(reason=reason):
                    say("lease_lost", reason=reason)
                case Fenced(by_instance=other):
                    say("fenced", by=other)
                case DrainRequested():
                    say("drain_requested")

    async def shrink() -> None:
        nonlocal rooms
        while rooms > 0:
            await trio.sleep(args.room_seconds)
            rooms -= 1

    drain = DrainController(registration, lambda: rooms, DrainConfig(deadline=args.deadline))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(report)
        await nursery.start(registration.run)
        outcome_box: list[str] = []

        async def drainer() -> None:
            outcome = await drain.run()
            outcome_box.append(outcome.reason)
            say("drained", reason=outcome.reason, trigger=outcome.trigger,
                remaining=outcome.remaining)
            nursery.cancel_scope.cancel()

        async def on_drain_start() -> None:
            await drain.started.wait()
            say("draining", trigger=drain.trigger)
            if args.room_seconds > 0:
                nursery.start_soon(shrink)

        nursery.start_soon(drainer)
        nursery.start_soon(on_drain_start)
        await registration.fenced.wait()
        say("stopped_claiming")
        nursery.cancel_scope.cancel()
    if registration.state != "fenced":
        await registration.deregister()
    say("exit")
    client.close()
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--etcd", required=True)
    p.add_argument("--node-id", required=True)
    p.add_argument("--kind", default="router")
    p.add_argument("--region", default="eu-central")
    p.add_argument("--jurisdiction", default="EEA")
    p.add_argument("--capacity", type=int, default=10)
    p.add_argument("--ttl", type=int, default=2)
    p.add_argument("--rooms", type=int, default=0)
    p.add_argument("--room-seconds", type=float, default=0.0)
    p.add_argument("--deadline", type=float, default=30.0)
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(trio.run(main, parse(sys.argv[1:])))
