"""How TURN load figures are printed (rich tables) and recorded (RESULTS.md rows).

One list of ``(label, formatter)`` drives the single-run table, the side-by-side table and the
recorded rows, so the three never disagree on what a figure means.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from benchmarks.turn_load.first_contact import FirstContact
from benchmarks.turn_load.runner import LoadReport


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


#: (figure name, how to format it from a report). "relayed packet" = one ChannelData delivered
#: client -> server -> client; the server handles it twice (in on one allocation, out on another).
FIGURES: list[tuple[str, Callable[[LoadReport], str]]] = [
    ("pairs / workers", lambda r: f"{r.pairs} / {r.workers}"),
    ("payload bytes", lambda r: str(r.size)),
    ("target pps", lambda r: _num(r.target_pps)),
    ("achieved pps (sent)", lambda r: _num(r.achieved_pps)),
    ("delivered pps", lambda r: _num(r.delivered_pps)),
    ("sent", lambda r: f"{r.sent:,}"),
    ("delivered", lambda r: f"{r.delivered:,}"),
    ("lost", lambda r: f"{r.lost:,} ({r.loss_pct:.3f}%)"),
    ("duplicates", lambda r: f"{r.duplicates:,}"),
    (
        "rcvbuf drops: generator / others",
        lambda r: f"{r.generator_rcvbuf_drops:,} / {r.other_rcvbuf_drops:,}",
    ),
    ("latency p50 µs", lambda r: _num(r.latency_p50_us)),
    ("latency p99 µs", lambda r: _num(r.latency_p99_us)),
    ("latency max µs", lambda r: _num(r.latency_max_us)),
    ("server CPU µs / relayed packet", lambda r: _num(r.server_cpu_us_per_packet, 2)),
    ("server CPU % of one core", lambda r: _num(r.server_cpu_pct, 1)),
    ("generator CPU % of one core", lambda r: _num(r.generator_cpu_pct, 1)),
    ("busiest worker CPU %", lambda r: _num(r.generator_worker_cpu_pct_max, 1)),
    ("other processes CPU % (noise)", lambda r: _num(r.other_cpu_pct, 1)),
]

#: Columns of a recorded RESULTS.md row.
RECORD_COLUMNS = [
    "server",
    "pairs",
    "target pps",
    "achieved pps",
    "delivered",
    "loss",
    "rcvbuf drops gen / other",
    "p50 µs",
    "p99 µs",
    "server CPU µs/pkt",
    "server CPU %",
    "generator CPU %",
    "other CPU %",
]


def record_row(label: str, r: LoadReport) -> list[str]:
    return [
        label,
        str(r.pairs),
        _num(r.target_pps),
        _num(r.achieved_pps),
        f"{r.delivered:,} of {r.sent:,}",
        f"{r.lost:,} ({r.loss_pct:.3f}%)",
        f"{r.generator_rcvbuf_drops:,} / {r.other_rcvbuf_drops:,}",
        _num(r.latency_p50_us),
        _num(r.latency_p99_us),
        _num(r.server_cpu_us_per_packet, 2),
        _num(r.server_cpu_pct, 1),
        _num(r.generator_cpu_pct, 1),
        _num(r.other_cpu_pct, 1),
    ]


def bottleneck_note(r: LoadReport) -> str | None:
    """A warning when the generator or other processes, not the server, may have limited
    the run."""
    if r.other_cpu_pct is not None and r.other_cpu_pct >= 20:
        return (
            f"other processes used {r.other_cpu_pct:.0f}% of a core during the run: the "
            "machine was not quiet, so these figures are noisy"
        )
    if r.generator_worker_cpu_pct_max >= 90 or r.achieved_pps < 0.98 * r.target_pps:
        return (
            f"the generator may be the bottleneck: achieved {r.achieved_pps:,.0f} of "
            f"{r.target_pps:,.0f} pps, busiest worker at {r.generator_worker_cpu_pct_max:.0f}% "
            "CPU (try --workers or a lower --pps)"
        )
    return None


def print_tables(title: str, labels: Sequence[str], reports: Sequence[LoadReport | None]) -> None:
    """One column per report (``None`` prints as skipped)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("figure")
    for label in labels:
        table.add_column(label, justify="right")
    for name, fmt in FIGURES:
        table.add_row(name, *[fmt(r) if r is not None else "skipped" for r in reports])
    console = Console()
    console.print(table)
    for label, r in zip(labels, reports, strict=True):
        if r is None:
            continue
        if (note := bottleneck_note(r)) is not None:
            console.print(f"[yellow]{label}: {note}[/yellow]")
        for failure in r.control_failures[:3]:
            console.print(f"[red]{label}: control failure during the run: {failure}[/red]")


def first_contact_line(labels: Sequence[str], figures: Sequence[FirstContact | None]) -> str:
    """Time to first allocation (browser-style 36-byte first Allocate), one clause a server."""
    parts = [
        f"{label} p50 {f.p50_ms:.1f} ms, max {f.max_ms:.1f} ms, "
        f"{f.retransmitted} of {f.clients} retransmitted"
        for label, f in zip(labels, figures, strict=True) if f is not None
    ]
    return "time to first allocation: " + ("; ".join(parts) or "not measured")


RECORD_NOTES = (
    "a relayed packet is one ChannelData delivered client -> server -> client (the server "
    "receives and sends it twice); server CPU is utime+stime from /proc over the send window "
    "plus drain; latency is one-way on one clock; rcvbuf drops: kernel receive-buffer "
    "overflows on the generator's sockets / on all other UDP sockets (the server's)"
)
