"""``regio bench loss``: residual loss and recovery delay under real (proxied) loss, and the
router's CPU per forwarded packet with the loss-aware logic on and off."""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from typing import Any

from control.clierror import CliError

SWEEP: tuple[tuple[float, float], ...] = ((0.0, 1.0), (2.0, 1.0), (5.0, 1.0), (10.0, 1.0),
                                          (5.0, 3.0))  # fmt: skip
"""(loss percent, mean burst) of the default sweep."""
TARGETS = {(2.0, 1.0): 0.001, (10.0, 1.0): 0.005, (5.0, 3.0): 0.01}
"""Residual-loss targets of issue 12 (with 50 ms RTT on the subscriber leg)."""


def add_command(kinds: Any) -> None:
    parser = kinds.add_parser(
        "loss",
        help="what subscribers receive through a lossy link: residual loss, recovery delay",
        description="A router process, a publisher sending VP8-shaped video and Opus-sized "
        "audio over real ICE/DTLS/SRTP, and subscribers behind `regio impair` proxies with "
        "the given loss and RTT. Per case: loss on the wire, residual loss (video not "
        "delivered within 300 ms; audio, which WebRTC does not retransmit, separately), "
        "recovery delay p50/p99 (gap seen -> repair arrived), NACKs, duplicates, "
        "complete/incomplete frames. Without --loss it sweeps 0, 2, 5, 10 %% random and 5 %% "
        "bursty (mean burst 3). It also runs the first case with the router's loss-aware "
        "logic off and reports router CPU per forwarded packet for both.",
    )
    parser.add_argument("--loss", type=float, help="loss percent (default: the sweep)")
    parser.add_argument("--burst", type=float, default=1.0, help="mean loss burst (default 1)")
    parser.add_argument("--rtt", type=float, default=50.0,
                        help="round-trip time of the subscriber leg in ms (default 50)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per case (default 10)")
    parser.add_argument("--subscribers", type=int, default=2, help="per case (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--plot", metavar="FILE", help="write residual loss per case (PNG)")
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.set_defaults(handler=run_loss)


def _flags(args: argparse.Namespace) -> str:
    flags = f"--rtt {args.rtt:g} --seconds {args.seconds:g} --subscribers {args.subscribers}"
    if args.loss is not None:
        flags = f"--loss {args.loss:g} --burst {args.burst:g} " + flags
    return flags


def run_loss(args: argparse.Namespace) -> int:
    import trio

    from benchmarks.impair import ImpairmentSettings
    from benchmarks.loss.scenario import run_case
    from benchmarks.sfu.router_proc import RouterStartError, start_router

    if args.loss is not None and not 0 <= args.loss < 100:
        raise CliError("--loss must be in [0, 100)")
    if args.burst < 1 or args.rtt < 0 or args.seconds < 3 or not 1 <= args.subscribers <= 32:
        raise CliError("--burst >= 1, --rtt >= 0, --seconds >= 3, --subscribers 1..32")
    cases = [(args.loss, args.burst)] if args.loss is not None else list(SWEEP)
    runs: list[tuple[float, float, bool]] = [(loss, burst, True) for loss, burst in cases]
    runs.append((cases[0][0], cases[0][1], False))
    results: list[dict[str, Any]] = []
    for loss, burst, aware in runs:
        settings = ImpairmentSettings(loss=loss, burst=burst, delay_ms=args.rtt / 2)
        try:
            router = start_router(extra_args=("--metrics", "127.0.0.1:0",
                                              *(() if aware else ("--no-loss-aware",))))
        except RouterStartError as exc:
            raise CliError(str(exc)) from None
        try:
            figures = trio.run(partial(run_case, router, settings, seconds=args.seconds,
                                       subscribers=args.subscribers, seed=args.seed))
        except (RuntimeError, trio.TooSlowError) as exc:
            raise CliError(f"loss bench case failed: {exc}") from None
        finally:
            router.stop()
        results.append({"loss_pct": loss, "burst": burst, "rtt_ms": args.rtt,
                        "loss_aware": aware, **figures})
    on, off = results[0], results[-1]
    ratio = (on["router_cpu_us_per_packet"] / off["router_cpu_us_per_packet"]
             if off["router_cpu_us_per_packet"] else None)
    document = {"cases": results[:-1], "loss_aware_off": off,
                "cpu_ratio_on_off": round(ratio, 3) if ratio else None}
    if args.json:
        from benchmarks import machine

        json.dump({"machine": machine.describe(), **document}, sys.stdout, indent=2)
        print()
    else:
        _print_table(results, ratio)
    if args.plot:
        _plot(results[:-1], args.plot)
    if args.record:
        _record(results, ratio, "regio bench loss " + _flags(args))
    return 0


_COLUMNS = ["loss %", "burst", "loss-aware", "wire loss %", "residual %", "audio residual %",
            "recovery p50 ms", "recovery p99 ms", "NACKs", "dups", "frames ok/bad",
            "router CPU us/pkt", "router metric downlink loss before/after %", "target"]


def _row(r: dict[str, Any]) -> list[str]:
    subs = r["subscribers"]
    wire = sum(s["wire_loss"] for s in subs) / len(subs)
    target = TARGETS.get((r["loss_pct"], r["burst"]))
    verdict = "" if target is None or not r["loss_aware"] else (
        f"<= {100 * target:g} %: {'met' if r['residual_loss'] <= target else 'MISSED'}")
    return [f"{r['loss_pct']:g}", f"{r['burst']:g}", "on" if r["loss_aware"] else "off",
            f"{100 * wire:.2f}", f"{100 * r['residual_loss']:.3f}",
            f"{100 * r['audio_residual_loss']:.2f}",
            f"{max(s['recovery_p50_ms'] for s in subs):.0f}", f"{r['recovery_p99_ms']:.0f}",
            str(sum(s["nacks"] for s in subs)), str(sum(s["duplicates"] for s in subs)),
            f"{sum(s['frames_complete'] for s in subs)}/"
            f"{sum(s['frames_incomplete'] for s in subs)}",
            f"{r['router_cpu_us_per_packet']:.1f}",
            f"{100 * r['router_downlink']['loss_before_recovery']:.2f}/"
            f"{100 * r['router_downlink']['loss_after_recovery']:.3f}", verdict]  # fmt: skip


def _print_table(results: list[dict[str, Any]], ratio: float | None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="regio bench loss (residual = video not delivered within 300 ms)")
    for column in _COLUMNS:
        table.add_column(column)
    for r in results:
        table.add_row(*_row(r))
    console = Console(width=None if sys.stdout.isatty() else 180)
    console.print(table)
    if ratio is not None:
        console.print(f"router CPU per forwarded packet, loss-aware on/off: {ratio:.2f}x "
                      "(target <= 1.15x)")


def _record(results: list[dict[str, Any]], ratio: float | None, command: str) -> None:
    from benchmarks import machine
    from benchmarks import results as store

    notes = ("subscriber legs through `regio impair` (both directions impaired, RTT as "
             "given); residual = video packets not delivered within 300 ms of sending "
             "(audio is not retransmitted in WebRTC: its residual equals its wire loss); "
             f"recovery = gap seen -> repair arrived; {machine.load_note()}")
    if ratio is not None:
        notes += f"; router CPU per forwarded packet loss-aware on/off: {ratio:.2f}x"
    store.record_section("Loss recovery (regio bench loss)", command, _COLUMNS,
                         [_row(r) for r in results], notes=notes)


def _plot(results: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['loss_pct']:g}%" + (f" b{r['burst']:g}" if r["burst"] > 1 else "")
              for r in results]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(labels, [100 * r["residual_loss"] for r in results], label="residual (video)")
    ax.plot(labels, [100 * sum(s["wire_loss"] for s in r["subscribers"]) / len(r["subscribers"])
                     for r in results], "o-", color="C3", label="on the wire")  # fmt: skip
    ax.set_ylabel("% of packets")
    ax.set_title("regio bench loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
