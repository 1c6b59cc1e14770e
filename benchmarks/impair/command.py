"""``regio impair``: run the impairment proxy alone (for manual tests and other tools)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from control.clierror import CliError


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def add_command(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "impair",
        help="a UDP proxy on loopback that loses, delays, reorders and rate-limits datagrams",
        description="Forward UDP between clients (who send to --listen) and --to, impairing "
        "both directions: loss with Gilbert-Elliott bursts, delay with jitter, reordering, a "
        "bottleneck rate with a drop-tail buffer. Settings change while it runs: send a JSON "
        'datagram such as {"set": {"rate_kbps": 300}, "direction": "down"} to --control '
        "(answered with the current settings and counters). Loopback addresses only.",
    )
    parser.add_argument("--listen", type=_address, required=True, help="HOST:PORT clients use")
    parser.add_argument("--to", type=_address, required=True, help="HOST:PORT to forward to")
    parser.add_argument("--loss", type=float, default=0.0, help="loss percent (default 0)")
    parser.add_argument("--burst", type=float, default=1.0,
                        help="mean loss burst length in datagrams (default 1: independent)")
    parser.add_argument("--delay", type=float, default=0.0, help="one-way delay, ms")
    parser.add_argument("--jitter", type=float, default=0.0, help="delay variation +/- ms")
    parser.add_argument("--reorder", type=float, default=0.0, help="reordered percent")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="bottleneck kbit/s per direction (default 0: unlimited)")
    parser.add_argument("--queue", type=float, default=200.0,
                        help="bottleneck buffer in ms of queueing (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--control", type=_address, help="HOST:PORT of the JSON control socket")
    parser.set_defaults(handler=run_impair)


def run_impair(args: argparse.Namespace) -> int:
    import trio

    from benchmarks.impair.model import ImpairmentSettings, SettingsError
    from benchmarks.impair.proxy import ImpairmentProxy, ProxyError

    try:
        settings = ImpairmentSettings(
            loss=args.loss, burst=args.burst, delay_ms=args.delay, jitter_ms=args.jitter,
            reorder=args.reorder, rate_kbps=args.rate, queue_ms=args.queue,
        )  # fmt: skip
        proxy = ImpairmentProxy(args.listen, args.to, settings, seed=args.seed,
                                control=args.control)  # fmt: skip
    except (SettingsError, ProxyError, OSError) as exc:
        raise CliError(f"regio impair: {exc}") from exc

    async def main() -> None:
        print(json.dumps({"listen": f"{proxy.address[0]}:{proxy.address[1]}",
                          "control": proxy.control_address and
                          f"{proxy.control_address[0]}:{proxy.control_address[1]}"}),
              flush=True)  # fmt: skip
        await proxy.run()

    try:
        trio.run(main)
    except KeyboardInterrupt:
        print(json.dumps(proxy.snapshot()), file=sys.stderr)
    return 0
