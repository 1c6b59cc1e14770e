"""``regio bench ...`` subcommands: measurements that print figures and can record them."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from control.clierror import CliError


def add_commands(subparsers: Any) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="measure Regio's speed (figures printed; --record adds them to RESULTS.md)",
        description="Benchmarks. Each prints a table (or JSON) of figures; with --record the "
        "figures are appended to benchmarks/RESULTS.md with the command, machine and date.",
    )
    kinds = bench.add_subparsers(dest="bench_kind", metavar="KIND", required=True)
    codec = kinds.add_parser(
        "codec",
        help="nanoseconds per wire-codec operation (RTP header read, RTCP parse, STUN check)",
    )
    codec.add_argument("--json", action="store_true", help="print one JSON document")
    codec.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    codec.add_argument("--filter", help="only cases whose name contains this text")
    codec.add_argument(
        "--seconds", type=float, default=0.2, help="length of one timing run (default 0.2)"
    )
    codec.add_argument("--repeats", type=int, default=5, help="timing runs per case (default 5)")
    codec.set_defaults(handler=run_codec)


def run_codec(args: argparse.Namespace) -> int:
    from benchmarks import codec, machine, results

    if args.seconds <= 0 or args.repeats < 1:
        raise CliError("--seconds must be positive and --repeats at least 1")
    figures = codec.run(
        target_seconds=args.seconds, repeats=args.repeats, name_filter=args.filter
    )
    if not figures:
        raise CliError(f"no codec benchmark matches {args.filter!r}")
    if args.json:
        document = {"machine": machine.describe(), "figures": [asdict(f) for f in figures]}
        json.dump(document, sys.stdout, indent=2)
        print()
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="regio bench codec (ns per operation)")
        table.add_column("operation")
        table.add_column("best ns", justify="right")
        table.add_column("median ns", justify="right")
        table.add_column("loops", justify="right")
        for f in figures:
            table.add_row(f.name, f"{f.best_ns:,.0f}", f"{f.median_ns:,.0f}", str(f.loops))
        Console().print(table)
    if args.record:
        command = "regio bench codec" + (f" --filter {args.filter!r}" if args.filter else "")
        results.record_section(
            "Wire codecs",
            command,
            ["operation", "best ns/op", "median ns/op"],
            [(f.name, f"{f.best_ns:,.0f}", f"{f.median_ns:,.0f}") for f in figures],
            notes=f"{args.repeats} runs of ~{args.seconds}s each; CPython, pure-Python codecs",
        )
    return 0
