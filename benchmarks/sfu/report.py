"""Printing and recording ``regio bench sfu`` figures."""

from __future__ import annotations

import os

from benchmarks import machine, results
from benchmarks.sfu.runner import (
    LABELS,
    SWEEP_MAX_LOSS_PCT,
    SWEEP_MAX_P99_US,
    BenchReport,
    PhaseReport,
)

GOAL = ("goals: router CPU per forwarded packet <= 1.0x Janus and <= 1.4x the SRTP relay on "
        "--load meeting; 40,000 forwarded pps per core with p99 < 5 ms and no loss")

ROWS: list[tuple[str, str]] = [
    ("rate factor", "rate"),
    ("forwarded pps", "forwarded_pps"),
    ("forwarded Mbit/s", "forwarded_mbps"),
    ("offered pps (publishers)", "offered_pps"),
    ("delivered / expected", ""),
    ("loss % (kernel drops included)", "loss_pct"),
    ("latency p50 us", "latency_p50_us"),
    ("latency p99 us", "latency_p99_us"),
    ("latency p99.9 us", "latency_p999_us"),
    ("latency max us", "latency_max_us"),
    ("to the subscriber's socket p50 us", "queued_p50_us"),
    ("to the subscriber's socket p99 us", "queued_p99_us"),
    ("to the subscriber's socket p99.9 us", "queued_p999_us"),
    ("server CPU us / forwarded packet", "server_cpu_us_per_packet"),
    ("server CPU ms / forwarded MB", "server_cpu_ms_per_mb"),
    ("server CPU % of a core", "server_cpu_pct"),
    ("load generator CPU % of a core", "generator_cpu_pct"),
    ("kernel drops, server sockets", "server_kernel_drops"),
    ("kernel drops, client sockets", "client_kernel_drops"),
    ("retransmissions received (RTX)", "retransmissions"),
    ("keyframe requests at publishers", "keyframe_requests"),
    ("other processes' CPU % (noise)", "other_cpu_pct"),
    ("stolen by the hypervisor, % of a core", "steal_cpu_pct"),
    ("server waited for its CPU, % of window", "server_cpu_wait_pct"),
]


def _cell(phase: PhaseReport | None, key: str) -> str:
    if phase is None:
        return "-"
    if not key:
        return f"{phase.delivered:,} / {phase.expected:,}"
    value = getattr(phase, key)
    if value is None:
        return "-"
    return f"{value:,.2f}" if isinstance(value, float) and value < 100 else f"{value:,.0f}"


def ratio_lines(outcome: BenchReport) -> list[str]:
    """The side-by-side ratios, one sentence each."""
    out = []
    if outcome.spec.rounds > 1:
        medians = ", ".join(f"{label} {w.server_cpu_us_per_packet} us (round {w.round})"
                            for label in outcome.phases
                            if (w := outcome.median(label)) is not None)
        out.append(f"median CPU per forwarded packet over {outcome.spec.rounds} interleaved "
                   f"rounds: {medians}")
    if outcome.cpu_ratio is not None:
        out.append(f"router CPU per forwarded packet / bare SRTP relay's: "
                   f"{outcome.cpu_ratio:.2f}x (target <= 1.4x)")
    python = outcome.median(LABELS["regio-python"])
    scaling = outcome.workers_scaling
    if scaling is not None:
        spec = outcome.spec
        out.append(f"router with {spec.compare_workers} workers / with {spec.router_workers}, "
                   f"{scaling[0]}: {scaling[1]:.2f}x (target >= 1.7x for 2 workers over 1, "
                   f"generator on its own core; this machine has {os.cpu_count()} cores)")
    fast = outcome.sfu.server_cpu_us_per_packet
    if python is not None and python.server_cpu_us_per_packet and fast:
        out.append(f"router CPU per forwarded packet, compiled fast path / Python path: "
                   f"{fast / python.server_cpu_us_per_packet:.2f}x")
    if outcome.spec.router_workers > 1:
        out.append(f"router: {outcome.spec.router_workers} worker processes (CPU, waits and "
                   "drops are all of them together)")
    if outcome.janus_ratio is not None:
        out.append(f"router CPU per forwarded packet / Janus's: {outcome.janus_ratio:.2f}x "
                   f"(target <= 1.0x)")
    janus = outcome.janus
    if janus is not None and janus.latency_p99_us and outcome.sfu.latency_p99_us:
        out.append(f"router p99 latency / Janus's: "
                   f"{outcome.sfu.latency_p99_us / janus.latency_p99_us:.2f}x")
    if outcome.spec.sweep:
        for label, windows in outcome.phases.items():
            # --load audio has no socket stamps: only the decrypt figure means anything.
            stamped = any(w.queued_p99_us is not None for w in windows)
            for at_socket, latency in ((False, "p99 to decrypt"),
                                       (True, "p99 to the subscriber's socket")):
                if at_socket and not stamped:
                    continue
                best = outcome.sustained(label, at_socket)
                figure = (f"{best.forwarded_pps:,.0f} forwarded pps (rate x{best.rate:g}, "
                          f"server CPU {best.server_cpu_pct:.0f} % of a core)" if best
                          else "none of the steps")
                out.append(f"{label}: highest sustainable (loss <= {SWEEP_MAX_LOSS_PCT} %, "
                           f"{latency} <= {SWEEP_MAX_P99_US / 1000:g} ms): {figure}")
    return out


def print_table(outcome: BenchReport, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("figure")
    columns = [(label, window) for label, windows in outcome.phases.items()
               for window in windows]
    for label, window in columns:
        name = label
        if outcome.spec.sweep:
            name += f" x{window.rate:g}"
        elif outcome.spec.rounds > 1:
            name += f" #{window.round}"
        table.add_column(name, justify="right")
    for name, key in ROWS:
        table.add_row(name, *(_cell(window, key) for _, window in columns))
    console = Console()
    console.print(table)
    for line in ratio_lines(outcome):
        console.print(line)
    if not outcome.pinned:
        console.print("not pinned: server and clients shared every core")
    console.print(GOAL)


def print_profile(summary: dict[str, list[tuple[str, float]]]) -> None:
    """The router's top functions from py-spy samples (% of all samples)."""
    for kind in ("self", "inclusive"):
        print(f"router profile, top functions by {kind} time (% of samples):")
        for name, pct in summary[kind]:
            print(f"  {pct:5.1f}  {name}")


def _pinning(outcome: BenchReport) -> str:
    if not outcome.pinned:
        return "unpinned"
    spec = outcome.spec
    if max(spec.router_workers, spec.compare_workers) > 1:
        return ("servers pinned to CPU 0 (a router's worker k to CPU k mod cores), clients to "
                "CPU 1")
    return "servers pinned to CPU 0, clients to CPU 1"


def record(outcome: BenchReport, command: str, plots: list[str] | None = None) -> None:
    columns = ["server", "round", "rate", "forwarded pps", "Mbit/s", "loss %", "p50 us", "p99 us",
               "p99.9 us", "socket p50 / p99 us", "CPU us/pkt", "CPU ms/MB", "server CPU %",
               "kernel drops srv/cli", "server CPU wait %", "generator CPU %", "other CPU %",
               "steal %"]
    rows = []
    for windows in outcome.phases.values():
        for w in windows:
            rows.append([w.server, w.round, f"x{w.rate:g}", _cell(w, "forwarded_pps"),
                         _cell(w, "forwarded_mbps"), _cell(w, "loss_pct"),
                         _cell(w, "latency_p50_us"), _cell(w, "latency_p99_us"),
                         _cell(w, "latency_p999_us"),
                         f"{_cell(w, 'queued_p50_us')} / {_cell(w, 'queued_p99_us')}",
                         _cell(w, "server_cpu_us_per_packet"),
                         _cell(w, "server_cpu_ms_per_mb"), _cell(w, "server_cpu_pct"),
                         f"{w.server_kernel_drops} / {w.client_kernel_drops}",
                         _cell(w, "server_cpu_wait_pct"), _cell(w, "generator_cpu_pct"),
                         _cell(w, "other_cpu_pct"), _cell(w, "steal_cpu_pct")])
    spec = outcome.spec
    load = ("meeting load: per publisher Opus 50 pps + VP8 30 fps at "
            f"{spec.video_kbps:g} kbit/s x rate (~1,100-byte packets, keyframe every 2 s), "
            "Chromium header extensions, SR/RR/NACK/PLI/TWCC" if spec.load == "meeting"
            else f"audio load: {spec.size}-byte payloads at --pps x rate")
    notes = (f"{load}; SRTP AES-GCM or as negotiated; "
             f"{_pinning(outcome)}"
             "; latency = publisher send -> subscriber decrypt, same clock; socket = publisher "
             "send -> the kernel's receive stamp on the subscriber's socket (the server's share, "
             "without the time a copy waits for the one-core generator); steal = CPU the "
             f"hypervisor gave other guests (/proc/stat); loss includes kernel drops; "
             f"{machine.load_note()}; "
             + "; ".join(ratio_lines(outcome)) + f"; {GOAL}")
    if plots:
        notes += "; plots: " + ", ".join(plots)
    results.record_section("SFU forwarding (regio router vs bare SRTP relay"
                           + (" vs Janus" if outcome.janus else "") + ")", command, columns,
                           rows, notes=notes)


__all__ = ["print_profile", "print_table", "ratio_lines", "record"]
