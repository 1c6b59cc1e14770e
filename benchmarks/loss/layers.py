"""The simulcast case of ``regio bench loss``: what the layer choice does to a subscriber
whose downlink capacity is cut and then restored.

The publisher sends three layers (q/h/f, :data:`benchmarks.media.CHROMIUM_SIMULCAST`); every
payload is stamped with its stream, so a subscriber knows which layer each packet it got
belongs to even though the router sends all of them under one SSRC. The first subscriber's
downlink is capped at :data:`CAP_KBPS` for the middle third of the run; the others stay
clean. Per subscriber: the layer before the cut, seconds until it received the lowest layer
after the cut and a higher one again after the lifting, complete and incomplete frames of
the layers it received, and freezes (gaps between completed frames longer than Chromium's
freeze threshold at 30 fps, which it then counts in ``totalFreezesDuration``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["CAP_KBPS", "LAYER_OF_STREAM", "Schedule", "layer_changes", "simulcast_figures"]

CAP_KBPS = 300.0
LAYER_OF_STREAM = {1: "q", 3: "h", 4: "f"}
FREEZE_NS = 183_000_000
"""A gap between rendered frames counted as a freeze: max(3 x 33 ms, 33 ms + 150 ms)."""
SETTLE = 5
"""Packets of a new layer in a row before it counts as received (late repairs of the old
layer arrive interleaved for a moment after a switch)."""


class _Impairable(Protocol):
    def update(self, direction: str = "both", **values: float) -> None: ...


@dataclass
class Schedule:
    """Cap the capacity at a third of the run, lift it at two thirds."""

    start: float
    seconds: float
    capped: bool = False
    lifted: bool = False

    @property
    def cut_at(self) -> float:
        return self.start + self.seconds / 3

    @property
    def lift_at(self) -> float:
        return self.start + 2 * self.seconds / 3

    def next_due(self) -> float:
        return self.cut_at if not self.capped else self.lift_at if not self.lifted else 1e18

    def apply(self, now: float, proxy: _Impairable) -> None:
        if not self.capped and now >= self.cut_at:
            proxy.update("down", rate_kbps=CAP_KBPS)
            self.capped = True
        if self.capped and not self.lifted and now >= self.lift_at:
            proxy.update("down", rate_kbps=0.0)
            self.lifted = True


class _Received(Protocol):
    arrivals: dict[tuple[int, int], int]


def layer_changes(arrivals: dict[tuple[int, int], int]) -> list[tuple[int, str]]:
    """``(arrival ns, layer)`` each time the video arriving moved to another layer."""
    video = sorted((ns, stream) for (stream, _), ns in arrivals.items()
                   if stream in LAYER_OF_STREAM)  # fmt: skip
    changes: list[tuple[int, str]] = []
    current: int | None = None
    run_stream, run_start, run = -1, 0, 0
    for ns, stream in video:
        if stream == current:
            run = 0
            continue
        if stream != run_stream:
            run_stream, run_start, run = stream, ns, 0
        run += 1
        if run >= SETTLE or current is None:
            current = stream
            changes.append((run_start, LAYER_OF_STREAM[stream]))
            run = 0
    return changes


def _first_after(changes: list[tuple[int, str]], after_ns: int, layers: str) -> float | None:
    for ns, layer in changes:
        if ns >= after_ns and layer in layers:
            return round((ns - after_ns) / 1e9, 2)
    return None


def _layer_at(changes: list[tuple[int, str]], ns: int) -> str | None:
    layer = None
    for at, name in changes:
        if at > ns:
            break
        layer = name
    return layer


def _frames(sent: dict[tuple[int, int], tuple[int, bool, int]],
            arrivals: dict[tuple[int, int], int]) -> tuple[int, int, float]:
    """Complete and incomplete frames among those the subscriber got any packet of, and
    seconds of freezes between completed frames."""
    frames: dict[tuple[int, int], list[int | None]] = {}
    for key, (_send, is_video, frame) in sent.items():
        if is_video:
            frames.setdefault((key[0], frame), []).append(arrivals.get(key))
    complete_at: list[int] = []
    incomplete = 0
    for got in frames.values():
        if all(g is None for g in got):
            continue  # a layer this subscriber was not receiving
        if any(g is None for g in got):
            incomplete += 1
        else:
            complete_at.append(max(g for g in got if g is not None))
    complete_at.sort()
    frozen = sum(b - a for a, b in itertools.pairwise(complete_at) if b - a > FREEZE_NS)
    return len(complete_at), incomplete, round(frozen / 1e9, 2)


def simulcast_figures(sent: dict[tuple[int, int], tuple[int, bool, int]],
                      clients: list[Any], schedule: Schedule, cpu: float, forwarded: int,
                      publisher: Any) -> dict[str, Any]:
    """The figures of one simulcast case (see the module docstring)."""
    import time

    import trio

    # Trio's clock and monotonic_ns differ by a constant: map the schedule onto arrivals.
    offset_ns = time.monotonic_ns() - int(trio.current_time() * 1e9)
    cut_ns = int(schedule.cut_at * 1e9) + offset_ns
    lift_ns = int(schedule.lift_at * 1e9) + offset_ns
    per: list[dict[str, Any]] = []
    for i, client in enumerate(clients):
        changes = layer_changes(client.arrivals)
        complete, incomplete, frozen = _frames(sent, client.arrivals)
        per.append({
            "capped": i == 0,
            "layer_before_cut": _layer_at(changes, cut_ns),
            "down_s": _first_after(changes, cut_ns, "q") if i == 0 else None,
            "up_s": _first_after(changes, lift_ns, "hf") if i == 0 else None,
            "layer_at_end": changes[-1][1] if changes else None,
            "switches": max(0, len(changes) - 1),
            "layers": [(round((ns - cut_ns) / 1e9 + schedule.seconds / 3, 2), layer)
                       for ns, layer in changes],
            "frames_complete": complete,
            "frames_incomplete": incomplete,
            "freezes_s": frozen,
            "nacks": client.nacks_sent,
            "duplicates": client.duplicates,
        })
    return {
        "subscribers": per,
        "router_cpu_us_per_packet": round(cpu * 1e6 / forwarded, 2) if forwarded else 0.0,
        "forwarded": forwarded,
        "publisher_retransmissions": publisher.retransmitted,
        "cap_kbps": CAP_KBPS,
        "cut_after_s": round(schedule.seconds / 3, 1),
        "lift_after_s": round(2 * schedule.seconds / 3, 1),
    }
