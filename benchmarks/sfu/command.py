"""``regio bench sfu``: arguments, output (table or JSON), ``--record`` and ``--plot``."""

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
        help="SFU forwarding load: a router and synthetic WebRTC clients, vs a bare SRTP relay "
        "and optionally Janus",
        description="Start a standalone router (one core) and synthetic WebRTC clients in "
        "worker processes (ICE, DTLS, SRTP for real). With --load meeting (default) publishers "
        "send Chromium-shaped Opus and VP8 (keyframe bursts, header extensions, SR) and "
        "subscribers send RR, NACK, PLI and TWCC; --load audio sends fixed-size paced packets. "
        "Subscribers decrypt and check every packet. Reports forwarded packets per second, "
        "server CPU per forwarded packet and megabyte, latency p50/p99/p99.9 (publisher send "
        "to subscriber decrypt) and loss (kernel drops included), then the same for a bare "
        "SRTP relay (the ceiling) and, with --target janus, Janus VideoRoom, and the ratios.",
    )
    parser.add_argument("--load", choices=("meeting", "audio"), default="meeting",
                        help="meeting: audio + VP8 video + RTCP (default); audio: today's "
                        "fixed-size packets at --pps")
    parser.add_argument("--target", choices=("regio", "janus"), default="regio",
                        help="janus: also run Janus VideoRoom under the same load, in the same "
                        "run (needs root: Janus runs in a network namespace of its own)")
    parser.add_argument("--python-path", action="store_true",
                        help="also run the router with its compiled loops switched off "
                        "(REGIO_FASTPATH=off: the Python reference path), same run")
    parser.add_argument("--workers", type=int, default=1,
                        help="regio router --workers N: rooms placed on the workers "
                        "round-robin, worker k pinned to CPU k mod cores (default 1)")
    parser.add_argument("--compare-workers", type=int, default=0, metavar="N",
                        help="also run the router with N workers in the same run and print "
                        "its forwarded pps over the --workers router's (scaling)")
    parser.add_argument("--rooms", type=int, default=1, help="rooms (default 1)")
    parser.add_argument("--publishers", type=int, default=1, help="publishers per room")
    parser.add_argument("--subscribers", type=int, default=2, help="subscribers per room")
    parser.add_argument("--video-kbps", type=float, default=1500.0,
                        help="--load meeting: video bitrate per publisher (default 1500)")
    parser.add_argument("--pps", type=float, default=1000.0,
                        help="--load audio: packets per second sent by all publishers "
                        "together (default 1000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="send window (default 5)")
    parser.add_argument("--size", type=int, default=200,
                        help="--load audio: RTP payload bytes (default 200)")
    parser.add_argument("--sweep", action="store_true",
                        help="raise the rate (x--sweep-factor per step, same connections) "
                        "until loss > 0.1 %% or p99 > 5 ms, both to decrypt and to the "
                        "subscriber's socket; report the highest sustainable forwarded pps "
                        "by each")
    parser.add_argument("--sweep-steps", type=int, default=10,
                        help="--sweep: at most this many steps (default 10)")
    parser.add_argument("--sweep-factor", type=float, default=1.5,
                        help="--sweep: rate factor of each step over the previous (1.05-4, "
                        "default 1.5)")
    parser.add_argument("--sweep-all", action="store_true",
                        help="--sweep: run every step, also past the limits (curves to plot)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat every server's phase N times, interleaved; ratios use "
                        "each server's median (default 1)")
    parser.add_argument("--client-workers", type=int, default=1,
                        help="load-generator processes, each owning whole rooms (default 1)")
    parser.add_argument("--no-relay", action="store_true", help="skip the bare relay ceiling")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the server to CPU 0 and the clients to CPU 1")
    parser.add_argument("--profile", metavar="FILE",
                        help="sample the router with py-spy (collapsed stacks to FILE) and "
                        "print its top functions")
    parser.add_argument("--plot", metavar="FILE",
                        help="write a PNG (matplotlib): server CPU per forwarded packet and p99 "
                        "latency against forwarded pps, one line per server")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.set_defaults(handler=run_sfu)


def _flags(args: argparse.Namespace) -> str:
    flags = f"--load {args.load}"
    if args.target != "regio":
        flags += f" --target {args.target}"
    if args.python_path:
        flags += " --python-path"
    if args.workers != 1:
        flags += f" --workers {args.workers}"
    if args.compare_workers:
        flags += f" --compare-workers {args.compare_workers}"
    flags += (f" --rooms {args.rooms} --publishers {args.publishers} "
              f"--subscribers {args.subscribers}")
    if args.load == "meeting":
        flags += f" --video-kbps {args.video_kbps:g}"
    else:
        flags += f" --pps {args.pps:g}"
        if args.size != 200:
            flags += f" --size {args.size}"
    flags += f" --seconds {args.seconds:g}"
    if args.sweep:
        flags += " --sweep" + (f" --sweep-steps {args.sweep_steps}"
                               if args.sweep_steps != 10 else "")
        flags += (f" --sweep-factor {args.sweep_factor:g}"
                  if args.sweep_factor != 1.5 else "")
        flags += " --sweep-all" if args.sweep_all else ""
    if args.rounds != 1:
        flags += f" --rounds {args.rounds}"
    if args.client_workers != 1:
        flags += f" --client-workers {args.client_workers}"
    if args.no_relay:
        flags += " --no-relay"
    return flags + (" --no-pin" if args.no_pin else "")


def spec_from_args(args: argparse.Namespace) -> Any:
    """The run the arguments ask for; CliError (exit 2) naming every problem."""
    from benchmarks.sfu.runner import BenchSpec

    targets = ("regio", *(("regio-python",) if args.python_path else ()),
               *(("regio-workers",) if args.compare_workers else ()),
               *(() if args.no_relay else ("relay",)),
               *(("janus",) if args.target == "janus" else ()))
    spec = BenchSpec(rooms=args.rooms, publishers=args.publishers,
                     subscribers=args.subscribers, pps=args.pps, seconds=args.seconds,
                     size=args.size, client_workers=args.client_workers,
                     relay=not args.no_relay, pin=not args.no_pin, load=args.load,
                     video_kbps=args.video_kbps, sweep=args.sweep, targets=targets,
                     sweep_steps=args.sweep_steps, sweep_factor=args.sweep_factor,
                     sweep_all=args.sweep_all,
                     rounds=args.rounds, router_workers=args.workers,
                     compare_workers=args.compare_workers)
    problems = spec.problems()
    if args.plot and not args.plot.lower().endswith(".png"):
        problems.append("--plot must name a .png file")
    for option, path in (("--plot", args.plot), ("--profile", args.profile)):
        if not path:
            continue
        if Path(path).is_dir():
            problems.append(f"{option} must name a file, not the directory {path}")
        elif not Path(path).resolve().parent.is_dir():
            problems.append(f"{option}: directory {Path(path).parent} does not exist")
    if problems:
        raise CliError("; ".join(problems))
    return spec


def run_sfu(args: argparse.Namespace) -> int:
    from benchmarks.sfu import report
    from benchmarks.sfu.runner import BenchError, run

    spec = spec_from_args(args)
    try:
        outcome = run(spec, profile_path=Path(args.profile) if args.profile else None)
    except BenchError as exc:
        raise CliError(str(exc)) from None
    document = outcome.as_json()
    if args.profile:
        from benchmarks.sfu.profile import summarise

        document["profile"] = summarise(Path(args.profile))
    plots: list[str] = []
    if args.plot:
        from benchmarks.sfu.plot import plot

        plots = [str(p) for p in plot(outcome, Path(args.plot))]
        document["plots"] = plots
    if args.json:
        from benchmarks import machine

        json.dump({"machine": machine.describe(), **document}, sys.stdout, indent=2)
        print()
    else:
        report.print_table(outcome, f"regio bench sfu {_flags(args)}")
        if "profile" in document:
            report.print_profile(document["profile"])
        for path in plots:
            print(f"plot: {path}")
    if args.record:
        report.record(outcome, "regio bench sfu " + _flags(args), plots)
    return 0


__all__ = ["GOAL_P99_US", "GOAL_PPS", "add_command", "run_sfu", "spec_from_args"]
