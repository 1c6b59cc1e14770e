"""``regio bench trunk``: arguments, output (table or JSON) and ``--record``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from control.clierror import CliError

GOAL_LOSS = 0.005
GOAL_SWITCH_S = 3.0
GOAL_RELAY_P99_MS = 2.0


def add_command(kinds: Any) -> None:
    parser = kinds.add_parser(
        "trunk",
        help="loss-aware trunk paths: three routers on namespace hosts, loss on the direct link",
        description="Build three namespace hosts with one router each (plus one for etcd and "
        "the participants), publish on the first router, subscribe on the second, then drop "
        "--loss percent of the packets between the first two with nftables. Reports delivered "
        "loss with loss-aware paths and with direct-only routers, seconds from loss onset to the "
        "path change, latency through one relay and router CPU per packet. Needs root.",
    )
    parser.add_argument("--loss", type=int, default=10, help="percent lost on the direct link")
    parser.add_argument("--relay-loss", type=int, default=0,
                        help="percent of media-sized packets (not probes) lost from the relay "
                        "r3 to r2, all the time: the relay leg's hop-by-hop repair (default 0)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="sending time per phase (default 20; loss starts after --warmup)")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="seconds of clean sending before the loss starts (default 5)")
    parser.add_argument("--pps", type=float, default=200.0, help="video packets per second")
    parser.add_argument("--size", type=int, default=1000, help="RTP payload bytes")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.set_defaults(handler=run_trunk)


def run_trunk(args: argparse.Namespace) -> int:
    from benchmarks.trunk.runner import BenchError, TrunkBenchSpec, run
    from control.netns import NetnsError

    if not 1 <= args.loss <= 99:
        raise CliError("--loss must be 1-99 percent")
    if not 0 <= args.relay_loss <= 99:
        raise CliError("--relay-loss must be 0-99 percent")
    if args.warmup < 2 or args.seconds < args.warmup + 5:
        raise CliError("--warmup must be at least 2 s and --seconds at least --warmup + 5")
    if not 10 <= args.pps <= 5000 or not 20 <= args.size <= 1200:
        raise CliError("--pps must be 10-5000 and --size 20-1200")
    spec = TrunkBenchSpec(loss=args.loss, seconds=args.seconds, warmup=args.warmup,
                          pps=args.pps, size=args.size, relay_loss=args.relay_loss)
    try:
        result = run(spec)
    except NetnsError as exc:
        raise CliError(str(exc)) from None
    except BenchError as exc:
        raise CliError(f"bench trunk: {exc}") from None
    from benchmarks import machine

    if args.json:
        json.dump({"machine": machine.describe(), **result}, sys.stdout)
        print()
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"regio bench trunk (--loss {args.loss} --relay-loss "
                            f"{args.relay_loss})")
        table.add_column("figure")
        table.add_column("value")
        table.add_column("target")
        targets = {"delivered_loss": f"<= {GOAL_LOSS}", "switch_s": f"<= {GOAL_SWITCH_S}",
                   "relay_p99_ms": f"<= {GOAL_RELAY_P99_MS} (added)"}
        for key, value in result.items():
            table.add_row(key, str(value), targets.get(key, ""))
        Console().print(table)
    if args.record:
        from benchmarks import results

        flags = (f"--loss {args.loss} --seconds {args.seconds:g} --warmup {args.warmup:g} "
                 f"--pps {args.pps:g} --size {args.size}"
                 + (f" --relay-loss {args.relay_loss}" if args.relay_loss else ""))
        keys = ["delivered_loss", "direct_only_loss", "steady_relay_loss", "switch_s",
                "direct_p99_ms", "relay_p99_total_ms", "relay_p99_ms",
                "router_cpu_us_per_packet", "relay_retransmits", "source_retransmits"]
        results.record_section(
            "Trunk paths under loss", f"regio bench trunk {flags}", keys,
            [[result[k] for k in keys]],
            notes="three routers on namespace hosts; nftables loss both ways on the r1-r2 "
            "link" + (f", {args.relay_loss} % of media-sized packets r3->r2"
                      if args.relay_loss else "") + f"; {machine.load_note()}")
    return 0


__all__ = ["add_command", "run_trunk"]
