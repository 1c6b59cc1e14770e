"""``regio bench sfu``: arguments, output (table or JSON) and ``--record``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from control.clierror import CliError

GOAL_PPS = 40_000
GOAL_P99_US = 5_000


def add_command(kinds: Any) -> None:
    parser = kinds.add_parser(
        "sfu",
        help="SFU forwarding load: a router and synthetic WebRTC clients, vs a bare UDP relay",
        description="Start a standalone router (one core) and synthetic WebRTC clients in "
        "worker processes (ICE, DTLS, SRTP for real); publishers send paced RTP, subscribers "
        "decrypt and check every payload. Reports forwarded packets per second, router CPU "
        "microseconds per forwarded packet, added latency p50/p99 and loss, then measures a "
        "bare Python UDP fan-out relay on the same load and reports the ratio.",
    )
    parser.add_argument("--rooms", type=int, default=1, help="rooms (default 1)")
    parser.add_argument("--publishers", type=int, default=1, help="publishers per room")
    parser.add_argument("--subscribers", type=int, default=2, help="subscribers per room")
    parser.add_argument("--pps", type=float, default=1000.0,
                        help="packets per second sent by all publishers together (default 1000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="send window (default 5)")
    parser.add_argument("--size", type=int, default=200, help="RTP payload bytes (default 200)")
    parser.add_argument("--client-workers", type=int, default=1,
                        help="load-generator processes, each owning whole rooms (default 1)")
    parser.add_argument("--no-relay", action="store_true", help="skip the bare relay ceiling")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the server to CPU 0 and the clients to CPU 1")
    parser.add_argument("--profile", metavar="FILE",
                        help="sample the router with py-spy (collapsed stacks to FILE) and "
                        "print its top functions")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.set_defaults(handler=run_sfu)


def _flags(args: argparse.Namespace) -> str:
    flags = (f"--rooms {args.rooms} --publishers {args.publishers} "
             f"--subscribers {args.subscribers} --pps {args.pps:g} --seconds {args.seconds:g}")
    if args.size != 200:
        flags += f" --size {args.size}"
    if args.client_workers != 1:
        flags += f" --client-workers {args.client_workers}"
    return flags + (" --no-pin" if args.no_pin else "")


def run_sfu(args: argparse.Namespace) -> int:
    from benchmarks.sfu import report
    from benchmarks.sfu.runner import BenchError, BenchSpec, run

    spec = BenchSpec(rooms=args.rooms, publishers=args.publishers,
                     subscribers=args.subscribers, pps=args.pps, seconds=args.seconds,
                     size=args.size, client_workers=args.client_workers,
                     relay=not args.no_relay, pin=not args.no_pin)
    if problems := spec.problems():
        raise CliError("; ".join(problems))
    try:
        outcome = run(spec, profile_path=Path(args.profile) if args.profile else None)
    except BenchError as exc:
        raise CliError(str(exc)) from None
    document = outcome.as_json()
    if args.profile:
        from benchmarks.sfu.profile import summarise

        document["profile"] = summarise(Path(args.profile))
    if args.json:
        from benchmarks import machine

        json.dump({"machine": machine.describe(), **document}, sys.stdout, indent=2)
        print()
    else:
        report.print_table(outcome, f"regio bench sfu {_flags(args)}")
        if "profile" in document:
            report.print_profile(document["profile"])
    if args.record:
        report.record(outcome, "regio bench sfu " + _flags(args))
    return 0


__all__ = ["GOAL_P99_US", "GOAL_PPS", "add_command", "run_sfu"]
