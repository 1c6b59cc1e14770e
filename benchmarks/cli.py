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

    turn = kinds.add_parser(
        "turn",
        help="TURN relay load: K client pairs relaying ChannelData through any RFC 8656 server",
        description="Allocate UDP relays with TURN REST credentials, pair the clients up "
        "(permission + channel to the partner's relayed address) and send ChannelData at a "
        "paced rate. Reports sent, delivered, loss, one-way latency and, given the server's "
        "pid, server CPU microseconds per relayed packet (one packet delivered client -> "
        "server -> client).",
    )
    turn.add_argument("--target", required=True, help="TURN server HOST:PORT ([v6]:PORT)")
    turn.add_argument("--secret", required=True, help="TURN REST shared secret")
    turn.add_argument("--realm", help="realm for the credentials (default: the server's)")
    turn.add_argument(
        "--region",
        help="mint Regio's region-bound usernames <expiry>:<region>:<participant> "
        "(default: coturn's <expiry>:<user>)",
    )
    turn.add_argument("--server-pid", type=int, help="measure this process's CPU (and children)")
    _add_load_arguments(turn)
    turn.add_argument("--label", help="row label in RESULTS.md (default: server process name)")
    turn.set_defaults(handler=run_turn)

    compare = kinds.add_parser(
        "turn-compare",
        help="the same TURN load against Debian coturn and `regio turn`, side by side",
        description="Start coturn (one relay thread) and then `regio turn` on free loopback "
        "ports, run identical load against each, and print both figures and the ratio of "
        "server CPU per relayed packet. Servers are stopped by pid.",
    )
    _add_load_arguments(compare, pairs=4, pps=40000.0)
    compare.add_argument("--skip-regio", action="store_true", help="measure coturn only")
    compare.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="alternate the servers this many times and keep each one's quietest round "
        "(least CPU used by other processes; for shared machines)",
    )
    compare.set_defaults(handler=run_turn_compare)

    fast = kinds.add_parser(
        "fastpath",
        help="each compiled per-packet loop of the router against its Python reference",
        description="Run each of the router's compiled loops (SRTP protect and ingest, "
        "sendmmsg, recvmmsg, extension rewrite, fan-out, in-order route, copy flush, TWCC "
        "decode/build and feedback, transport-wide sequence read, the driver's wakeup) and its "
        "Python reference on the same data in one process; microseconds per item and the "
        "ratio. Needs the helpers `make setup` builds.",
    )
    fast.add_argument("--repeats", type=int, default=30,
                      help="runs per case, the fastest kept (default 30)")
    fast.add_argument("--json", action="store_true", help="print one JSON document")
    fast.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    fast.set_defaults(handler=run_fastpath)

    from benchmarks.frontdoor import add_command as add_frontdoor

    add_frontdoor(kinds)

    from benchmarks.sfu.command import add_command as add_sfu

    add_sfu(kinds)

    from benchmarks.trunk.command import add_command as add_trunk

    add_trunk(kinds)
    from benchmarks.failover.command import add_command as add_failover

    add_failover(kinds)

    from benchmarks.loss.command import add_command as add_loss

    add_loss(kinds)

    from benchmarks.impair.command import add_command as add_impair

    add_impair(subparsers)


def run_fastpath(args: argparse.Namespace) -> int:
    from benchmarks import fastpath as bench
    from benchmarks import machine, results
    from router.transport import fastpath

    if not 1 <= args.repeats <= 1000:
        raise CliError("--repeats must be 1-1000")
    if not fastpath.built():
        raise CliError(fastpath.describe())
    figures = bench.run(args.repeats)
    if args.json:
        document = {"machine": machine.describe(),
                    "figures": [{**asdict(f), "ratio": round(f.ratio, 3)} for f in figures]}
        json.dump(document, sys.stdout, indent=2)
        print()
    else:
        for f in figures:
            print(f"{f.case:42} Python {f.python_us:8.3f} us  compiled {f.compiled_us:8.3f} us"
                  f"  {f.ratio:.2f}x")
    if args.record:
        command = "regio bench fastpath" + (f" --repeats {args.repeats}"
                                            if args.repeats != 30 else "")
        results.record_section(
            "Router fast path: compiled loops vs their Python references", command,
            ["loop", "Python us", "compiled us", "compiled / Python"],
            [[f.case, f.python_us, f.compiled_us, f"{f.ratio:.2f}x"] for f in figures],
            notes=f"same data through both paths in one process, fastest of {args.repeats} "
            f"runs per case; {machine.load_note()}")
    return 0


def run_codec(args: argparse.Namespace) -> int:
    from benchmarks import codec, machine, results

    if args.seconds <= 0 or args.repeats < 1:
        raise CliError("--seconds must be positive and --repeats at least 1")
    figures = codec.run(target_seconds=args.seconds, repeats=args.repeats, name_filter=args.filter)
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
        from router.transport import fastpath

        command = "regio bench codec" + (f" --filter {args.filter!r}" if args.filter else "")
        if not fastpath.enabled() and fastpath.built():
            command = f"{fastpath.ENV}=off {command}"
        results.record_section(
            "Wire codecs",
            command,
            ["operation", "best ns/op", "median ns/op"],
            [(f.name, f"{f.best_ns:,.0f}", f"{f.median_ns:,.0f}") for f in figures],
            notes=f"{args.repeats} runs of ~{args.seconds}s each; CPython; codecs in Python, "
            f"the router's per-packet loops on the {fastpath.describe()}",
        )
    return 0


def _add_load_arguments(
    parser: argparse.ArgumentParser, pairs: int = 2, pps: float = 1000.0
) -> None:
    parser.add_argument("--pairs", type=int, default=pairs, help=f"client pairs (default {pairs})")
    parser.add_argument(
        "--pps",
        type=float,
        default=pps,
        help=f"packets per second, all clients together (default {pps:g})",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="send window (default 5)")
    parser.add_argument(
        "--size", type=int, default=200, help="ChannelData payload bytes (default 200, min 12)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="generator processes, each owning whole pairs (default 1)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")


def _check_load_arguments(args: argparse.Namespace) -> None:
    from benchmarks.turn_load.pump import MIN_SIZE

    if args.pairs < 1 or args.workers < 1:
        raise CliError("--pairs and --workers must be at least 1")
    if args.pps <= 0 or args.seconds <= 0:
        raise CliError("--pps and --seconds must be positive")
    if not MIN_SIZE <= args.size <= 8192:
        raise CliError(f"--size must be {MIN_SIZE}-8192 bytes (sequence number and timestamp)")
    if args.pps * args.seconds >= 2**32:
        raise CliError("--pps x --seconds must stay below 2**32 packets")


def _load_flags(args: argparse.Namespace) -> str:
    flags = f"--pairs {args.pairs} --pps {args.pps:g} --seconds {args.seconds:g}"
    flags += f" --size {args.size}" + (f" --workers {args.workers}" if args.workers > 1 else "")
    return flags


def run_turn(args: argparse.Namespace) -> int:
    from benchmarks import results
    from benchmarks.turn_load import report
    from benchmarks.turn_load.first_contact import measure_first_contact
    from benchmarks.turn_load.runner import LoadSpec, run_load
    from benchmarks.turn_load.session import LoadError
    from benchmarks.turn_load.target import parse_target

    _check_load_arguments(args)
    try:
        host, port = parse_target(args.target)
        first = measure_first_contact(host, port, args.secret, realm=args.realm,
                                      region=args.region)
        figures = run_load(
            LoadSpec(
                host,
                port,
                args.secret,
                realm=args.realm,
                region=args.region,
                pairs=args.pairs,
                pps=args.pps,
                seconds=args.seconds,
                size=args.size,
                workers=args.workers,
                server_pid=args.server_pid,
            )
        )
    except LoadError as exc:
        raise CliError(str(exc)) from None
    label = args.label or figures.server or args.target
    first_line = report.first_contact_line([label], [first])
    if args.json:
        json.dump({"machine": machine_info(), **figures.as_json(),
                   "first_allocation": first.as_json()}, sys.stdout, indent=2)
        print()
    else:
        report.print_tables(f"regio bench turn -> {args.target}", [label], [figures])
        print(first_line)
    if args.record:
        command = f"regio bench turn --target {args.target} --secret S"
        command += "".join(
            f" --{name} {value}"
            for name, value in (("realm", args.realm), ("region", args.region))
            if value
        )
        command += (" --server-pid PID " if args.server_pid else " ") + _load_flags(args)
        results.record_section(
            "TURN relay load",
            command,
            report.RECORD_COLUMNS,
            [report.record_row(label, figures)],
            notes=report.RECORD_NOTES + "; " + first_line,
        )
    return 0


def run_turn_compare(args: argparse.Namespace) -> int:
    from benchmarks import results
    from benchmarks.turn_load import report
    from benchmarks.turn_load.compare import run_compare
    from benchmarks.turn_load.session import LoadError

    _check_load_arguments(args)
    if args.rounds < 1:
        raise CliError("--rounds must be at least 1")
    try:
        outcome = run_compare(
            pairs=args.pairs,
            pps=args.pps,
            seconds=args.seconds,
            size=args.size,
            workers=args.workers,
            rounds=args.rounds,
            skip_regio=args.skip_regio,
        )
    except LoadError as exc:
        raise CliError(str(exc)) from None
    labels = [outcome.coturn_version, "regio turn"]
    if args.json:
        json.dump({"machine": machine_info(), **outcome.as_json()}, sys.stdout, indent=2)
        print()
    else:
        report.print_tables("regio bench turn-compare", labels, [outcome.coturn, outcome.regio])
        if outcome.regio_skipped:
            print(f"regio turn: {outcome.regio_skipped}")
        if outcome.cpu_ratio is not None:
            print(
                f"server CPU per relayed packet, regio / coturn: {outcome.cpu_ratio:.2f}x "
                "(goal: at most 1.5x)"
            )
        print(report.first_contact_line(labels, [outcome.coturn_first, outcome.regio_first]))
    if args.record:
        rows = [report.record_row(labels[0], outcome.coturn)]
        if outcome.regio is not None:
            rows.append(report.record_row(labels[1], outcome.regio))
        notes = report.RECORD_NOTES
        if outcome.cpu_ratio is not None:
            notes += f"; regio/coturn CPU per relayed packet: {outcome.cpu_ratio:.2f}x"
        elif outcome.regio_skipped:
            notes += f"; regio turn not measured: {outcome.regio_skipped}"
        notes += "; " + report.first_contact_line(labels,
                                                  [outcome.coturn_first, outcome.regio_first])
        results.record_section(
            "TURN relay, coturn vs regio turn",
            "regio bench turn-compare "
            + _load_flags(args)
            + (f" --rounds {args.rounds}" if args.rounds > 1 else ""),
            report.RECORD_COLUMNS,
            rows,
            notes=notes,
        )
    return 1 if outcome.regio_failed else 0


def machine_info() -> dict[str, str | int]:
    from benchmarks import machine

    return machine.describe()
