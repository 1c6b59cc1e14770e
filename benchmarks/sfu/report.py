"""Printing and recording ``regio bench sfu`` figures."""

from __future__ import annotations

from benchmarks import results
from benchmarks.sfu.runner import BenchReport, PhaseReport

GOAL = "goal: 40,000 forwarded SRTP pps on one core, p99 added latency < 5 ms, no loss"

ROWS: list[tuple[str, str]] = [
    ("forwarded pps", "forwarded_pps"),
    ("offered pps (publishers)", "offered_pps"),
    ("delivered / expected", ""),
    ("loss %", "loss_pct"),
    ("latency p50 us", "latency_p50_us"),
    ("latency p99 us", "latency_p99_us"),
    ("latency max us", "latency_max_us"),
    ("server CPU us / forwarded packet", "server_cpu_us_per_packet"),
    ("server CPU % of a core", "server_cpu_pct"),
    ("load generator CPU % of a core", "generator_cpu_pct"),
    ("UDP receive-buffer drops (host)", "rcvbuf_drops"),
    ("other processes' CPU % (noise)", "other_cpu_pct"),
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


def print_table(outcome: BenchReport, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("figure")
    table.add_column("regio router", justify="right")
    table.add_column("bare relay", justify="right")
    for label, key in ROWS:
        table.add_row(label, _cell(outcome.sfu, key), _cell(outcome.relay, key))
    console = Console()
    console.print(table)
    if outcome.cpu_ratio is not None:
        console.print(f"router CPU per forwarded packet / bare relay's: {outcome.cpu_ratio:.2f}x")
    if not outcome.pinned:
        console.print("not pinned: server and clients shared every core")
    console.print(GOAL)


def print_profile(summary: dict[str, list[tuple[str, float]]]) -> None:
    """The router's top functions from py-spy samples (% of all samples)."""
    for kind in ("self", "inclusive"):
        print(f"router profile, top functions by {kind} time (% of samples):")
        for name, pct in summary[kind]:
            print(f"  {pct:5.1f}  {name}")


def record(outcome: BenchReport, command: str) -> None:
    columns = ["server", "forwarded pps", "loss %", "p50 us", "p99 us", "CPU us/pkt",
               "server CPU %", "server CPU wait %", "generator CPU %", "other CPU %"]
    rows = []
    for phase in (outcome.sfu, outcome.relay):
        if phase is not None:
            rows.append([phase.server, _cell(phase, "forwarded_pps"), _cell(phase, "loss_pct"),
                         _cell(phase, "latency_p50_us"), _cell(phase, "latency_p99_us"),
                         _cell(phase, "server_cpu_us_per_packet"),
                         _cell(phase, "server_cpu_pct"), _cell(phase, "server_cpu_wait_pct"),
                         _cell(phase, "generator_cpu_pct"),
                         _cell(phase, "other_cpu_pct")])
    notes = (f"{outcome.spec.size}-byte payloads, AES-GCM or AES-CM SRTP as negotiated; "
             f"{'router/relay pinned to CPU 0, clients to CPU 1' if outcome.pinned else 'unpinned'}"
             f"; latency = publisher send -> subscriber decrypt, same clock; {GOAL}")
    if outcome.cpu_ratio is not None:
        notes += f"; router/relay CPU per packet: {outcome.cpu_ratio:.2f}x"
    results.record_section("SFU forwarding (regio router vs bare UDP relay)", command, columns,
                           rows, notes=notes)


__all__ = ["print_profile", "print_table", "record"]
