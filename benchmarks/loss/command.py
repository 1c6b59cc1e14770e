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
        "bursty (mean burst 3). It then runs the first case again on two routers side by "
        "side, one with the loss-aware logic off, and reports router CPU per forwarded packet "
        "for both (side by side, so a shared machine's load affects both alike).",
    )
    parser.add_argument("--loss", type=float, help="loss percent (default: the sweep)")
    parser.add_argument("--burst", type=float, default=1.0, help="mean loss burst (default 1)")
    parser.add_argument("--rtt", type=float, default=50.0,
                        help="round-trip time of the subscriber leg in ms (default 50)")
    parser.add_argument("--seconds", type=float,
                        help="per case (default 10; 30 with --simulcast)")
    parser.add_argument("--subscribers", type=int, default=2, help="per case (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--simulcast", action="store_true",
                        help="the publisher sends three layers (rid q/h/f, 150/500/1050 "
                        "kbit/s) and the first subscriber's downlink is capped at 300 kbit/s "
                        "for the middle third of the run: layer switch times, frames, "
                        "freezes (one case, --loss default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--plot", metavar="FILE", help="write residual loss per case (PNG)")
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.set_defaults(handler=run_loss)


def _flags(args: argparse.Namespace) -> str:
    flags = f"--rtt {args.rtt:g} --seconds {args.seconds:g} --subscribers {args.subscribers}"
    if args.loss is not None:
        flags = f"--loss {args.loss:g} --burst {args.burst:g} " + flags
    if args.simulcast:
        flags = "--simulcast " + flags
    return flags


def run_loss(args: argparse.Namespace) -> int:
    from benchmarks.impair import ImpairmentSettings

    if args.loss is not None and not 0 <= args.loss < 100:
        raise CliError("--loss must be in [0, 100)")
    if args.seconds is None:
        args.seconds = 30.0 if args.simulcast else 10.0
    if args.burst < 1 or args.rtt < 0 or args.seconds < 3 or not 1 <= args.subscribers <= 32:
        raise CliError("--burst >= 1, --rtt >= 0, --seconds >= 3, --subscribers 1..32")
    if args.simulcast:
        if args.seconds < 15:
            raise CliError("--simulcast needs --seconds >= 15 (three phases)")
        return _run_simulcast(args)
    cases = [(args.loss, args.burst)] if args.loss is not None else list(SWEEP)
    results: list[dict[str, Any]] = []
    for loss, burst in cases:
        settings = ImpairmentSettings(loss=loss, burst=burst, delay_ms=args.rtt / 2)
        [figures] = _run_routers([True], settings, args)
        results.append({"loss_pct": loss, "burst": burst, "rtt_ms": args.rtt,
                        "loss_aware": True, **figures})
    # CPU on/off: the first case again with two routers at once, one with the loss-aware
    # logic and one without, so both see the same load of a shared machine.
    loss, burst = cases[0]
    settings = ImpairmentSettings(loss=loss, burst=burst, delay_ms=args.rtt / 2)
    pair_on, pair_off = _run_routers([True, False], settings, args)
    off = {"loss_pct": loss, "burst": burst, "rtt_ms": args.rtt, "loss_aware": False,
           **pair_off}
    results.append(off)
    ratio = (pair_on["router_cpu_us_per_packet"] / pair_off["router_cpu_us_per_packet"]
             if pair_off["router_cpu_us_per_packet"] else None)
    pair = {"on": pair_on["router_cpu_us_per_packet"],
            "off": pair_off["router_cpu_us_per_packet"]}
    document = {"cases": results[:-1], "loss_aware_off": off,
                "cpu_side_by_side_us_per_packet": pair,
                "cpu_ratio_on_off": round(ratio, 3) if ratio else None}
    if args.json:
        from benchmarks import machine

        json.dump({"machine": machine.describe(), **document}, sys.stdout, indent=2)
        print()
    else:
        _print_table(results, ratio, pair)
    if args.plot:
        _plot(results[:-1], args.plot)
    if args.record:
        _record(results, ratio, "regio bench loss " + _flags(args),
                pair)
    return 0


def _run_routers(aware: list[bool], settings: Any, args: argparse.Namespace,
                 ) -> list[dict[str, Any]]:
    """One case against one router per entry of ``aware`` (loss-aware logic on or off), all
    at the same time; their figures in the same order."""
    import trio

    from benchmarks.loss.scenario import run_case
    from benchmarks.sfu.router_proc import RouterProcess, RouterStartError, start_router

    routers: list[RouterProcess] = []
    try:
        for on in aware:
            routers.append(start_router(extra_args=("--metrics", "127.0.0.1:0",
                                                    *(() if on else ("--no-loss-aware",)))))
    except RouterStartError as exc:
        for router in routers:
            router.stop()
        raise CliError(str(exc)) from None
    figures: list[dict[str, Any]] = [{} for _ in routers]

    async def both() -> None:
        async def one(i: int) -> None:
            figures[i] = await run_case(routers[i], settings, seconds=args.seconds,
                                        subscribers=args.subscribers, seed=args.seed + i)
        async with trio.open_nursery() as nursery:
            for i in range(len(routers)):
                nursery.start_soon(one, i)

    try:
        trio.run(both)
    except (RuntimeError, trio.TooSlowError) as exc:
        raise CliError(f"loss bench case failed: {exc}") from None
    finally:
        for router in routers:
            router.stop()
    return figures


def _run_simulcast(args: argparse.Namespace) -> int:
    import trio

    from benchmarks.impair import ImpairmentSettings
    from benchmarks.loss.scenario import run_case
    from benchmarks.sfu.router_proc import RouterStartError, start_router

    loss = args.loss or 0.0
    settings = ImpairmentSettings(loss=loss, burst=args.burst, delay_ms=args.rtt / 2)
    try:
        router = start_router(extra_args=("--metrics", "127.0.0.1:0"))
    except RouterStartError as exc:
        raise CliError(str(exc)) from None
    try:
        figures = trio.run(partial(run_case, router, settings, seconds=args.seconds,
                                   subscribers=args.subscribers, seed=args.seed,
                                   simulcast=True))  # fmt: skip
    except (RuntimeError, trio.TooSlowError) as exc:
        raise CliError(f"loss bench simulcast case failed: {exc}") from None
    finally:
        router.stop()
    result = {"loss_pct": loss, "burst": args.burst, "rtt_ms": args.rtt, **figures}
    if args.json:
        from benchmarks import machine

        json.dump({"machine": machine.describe(), "simulcast": result}, sys.stdout, indent=2)
        print()
    else:
        _print_simulcast(result)
    if args.record:
        _record_simulcast(result, "regio bench loss " + _flags(args))
    return 0


_SIMULCAST_COLUMNS = ["subscriber", "leg", "layer before cut", "down after cut s",
                      "up after lift s", "layer at end", "switches", "frames ok/bad",
                      "freezes s", "NACKs", "target"]


def _simulcast_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for i, s in enumerate(result["subscribers"]):
        def secs(value: float | None) -> str:
            return "-" if value is None else f"{value:.2f}"

        if s["capped"]:
            down, up = s["down_s"], s["up_s"]
            met = down is not None and down <= 2.0 and up is not None and up <= 15.0
            verdict = f"down <= 2 s, up <= 15 s: {'met' if met else 'MISSED'}"
        else:
            verdict = ""
        leg = f"capped {result['cap_kbps']:g} kbit/s" if s["capped"] else "clean"
        rows.append([f"sub{i}", leg, str(s["layer_before_cut"]), secs(s["down_s"]),
                     secs(s["up_s"]), str(s["layer_at_end"]), str(s["switches"]),
                     f"{s['frames_complete']}/{s['frames_incomplete']}", f"{s['freezes_s']:.2f}",
                     str(s["nacks"]), verdict])  # fmt: skip
    return rows


def _print_simulcast(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"regio bench loss --simulcast (cap from {result['cut_after_s']:g} s "
                  f"to {result['lift_after_s']:g} s, loss {result['loss_pct']:g} %)")
    for column in _SIMULCAST_COLUMNS:
        table.add_column(column)
    for row in _simulcast_rows(result):
        table.add_row(*row)
    console = Console(width=None if sys.stdout.isatty() else 180)
    console.print(table)
    console.print(f"router CPU per forwarded packet: {result['router_cpu_us_per_packet']:.1f} us")


def _record_simulcast(result: dict[str, Any], command: str) -> None:
    from benchmarks import machine
    from benchmarks import results as store

    notes = (f"publisher: three VP8 layers q/h/f (150/500/1050 kbit/s); the first subscriber's "
             f"downlink capped at {result['cap_kbps']:g} kbit/s from {result['cut_after_s']:g} "
             f"s to {result['lift_after_s']:g} s through `regio impair`; times are from the cap "
             "(lifting) to the first packets of the lowest (a higher) layer at the subscriber; "
             "freezes = gaps > 183 ms between completed frames; router CPU "
             f"{result['router_cpu_us_per_packet']:.1f} us per forwarded packet; "
             f"{machine.load_note()}")
    store.record_section("Simulcast under a capacity cut (regio bench loss --simulcast)",
                         command, _SIMULCAST_COLUMNS, _simulcast_rows(result), notes=notes)


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


def _print_table(results: list[dict[str, Any]], ratio: float | None,
                 pair: dict[str, float]) -> None:
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
                      f"({pair['on']:.1f} / {pair['off']:.1f} us, two routers side by side in "
                      "the first case; target <= 1.15x)")


def _record(results: list[dict[str, Any]], ratio: float | None, command: str,
            pair: dict[str, float]) -> None:
    from benchmarks import machine
    from benchmarks import results as store

    notes = ("subscriber legs through `regio impair` (both directions impaired, RTT as "
             "given); residual = video packets not delivered within 300 ms of sending "
             "(audio is not retransmitted in WebRTC: its residual equals its wire loss); "
             f"recovery = gap seen -> repair arrived; {machine.load_note()}")
    if ratio is not None:
        notes += (f"; router CPU per forwarded packet loss-aware on/off: {ratio:.2f}x (two "
                  "routers running the first case side by side: on "
                  f"{pair['on']:.1f}, off {pair['off']:.1f} us/pkt; the off row is that run)")
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
