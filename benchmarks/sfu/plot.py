"""``--plot FILE``: server CPU per forwarded packet and p99 latency against forwarded load.

One PNG with two panels, one line per server (router, SRTP relay, Janus), a point per window
(the ``--sweep`` steps, or the single window) at the load it was offered (expected deliveries
per second); the 5 ms p99 goal is drawn on the right panel, where each server's p99 to the
subscriber's socket (its own share, ``--load meeting``) is the dotted line of its colour.
matplotlib runs headless (Agg) and is imported only when a plot is asked for.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.sfu.runner import SWEEP_MAX_P99_US, BenchReport

MARKERS = {"regio router": "o", "bare SRTP relay": "s", "janus": "^"}


def plot(outcome: BenchReport, path: Path) -> list[Path]:
    """Write the figure to ``path``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cpu, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, windows in outcome.phases.items():
        # Against the load asked for (what the server should forward), not what it managed:
        # a starved server's delivered rate falls while the load rises.
        points = sorted((w.expected / w.send_window_s, w.server_cpu_us_per_packet,
                         w.latency_p99_us, w.queued_p99_us) for w in windows if w.forwarded_pps)
        if not points:
            continue
        load = [p[0] for p in points]
        marker = MARKERS.get(label, "x")
        cpu.plot(load, [p[1] or 0 for p in points], marker=marker, label=label)
        line, = latency.plot(load, [(p[2] or 0) / 1000 for p in points], marker=marker,
                             label=label)
        if any(p[3] for p in points):
            latency.plot(load, [(p[3] or 0) / 1000 for p in points], marker=marker,
                         linestyle=":", color=line.get_color(), label=f"{label}, to socket")
    cpu.set_xlabel("offered load: packets per second to forward")
    cpu.set_ylabel("server CPU µs per forwarded packet")
    cpu.set_ylim(bottom=0)
    latency.set_xlabel("offered load: packets per second to forward")
    latency.set_ylabel("p99 latency, ms (send to decrypt; dotted: to socket)")
    latency.axhline(SWEEP_MAX_P99_US / 1000, color="grey", linestyle="--", linewidth=1,
                    label="5 ms goal")
    latency.set_yscale("log")
    for axes in (cpu, latency):
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
    spec = outcome.spec
    figure.suptitle(f"regio bench sfu --load {spec.load}: {spec.rooms} rooms x "
                    f"{spec.publishers} publishers x {spec.subscribers} subscribers"
                    + (" (sweep)" if spec.sweep else ""))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return [path]


__all__ = ["plot"]
