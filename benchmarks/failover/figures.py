"""Figures of ``regio bench failover`` from what its clients and probes recorded (pure: tested
with invented timelines)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from benchmarks.failover.participant import Event

TARGETS = {"stop_assigning_s": 2.0, "rejoin_p99_s": 5.0, "failed_joins": 0,
           "duplicate_placements": 0, "residency_violations": 0, "chat_wrong_room": 0}
"""Issue 14's targets (``<=``)."""


def stop_assigning(probes: Sequence[tuple[float, str]], dead: str, killed_at: float
                   ) -> float | None:
    """Seconds from the kill until the front door's answers stop naming ``dead`` for good.

    ``probes`` are (time, router named or '' for a failed join) in time order. The moment is
    the first answer after the kill from which no later answer names ``dead``; None if the
    last answer still named it (not seen within the probing window)."""
    after = [(t, r) for t, r in probes if t >= killed_at]
    last_dead = max((i for i, (_, r) in enumerate(after) if r == dead), default=-1)
    rest = after[last_dead + 1:]
    clean = next(((t, r) for t, r in rest if r), None)
    if clean is None:
        return None
    return clean[0] - killed_at


def back_in(events: Iterable[Event], since: float, not_on: str) -> float | None:
    """When a participant was next in the meeting (media connected) on another router."""
    for event in events:
        if event.at >= since and event.kind == "in" and event.router != not_on:
            return event.at
    return None


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (with few values, p99 is the largest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def residency_violations(events: Iterable[Event], allowed: set[str]) -> int:
    """Assignments or connections to a router outside the client's allowed jurisdictions."""
    return sum(1 for e in events if e.kind in ("assigned", "in") and e.jurisdiction
               and e.jurisdiction not in allowed)


def duplicate_placements(rooms: Mapping[str, Iterable[str]]) -> int:
    """Rooms whose connected participants are on more than one router (``rooms``: room ->
    the router of each connected participant)."""
    return sum(1 for routers in rooms.values() if len({r for r in routers if r}) > 1)


def verdicts(figures: Mapping[str, object]) -> dict[str, str]:
    """``met`` / ``MISSED`` (or ``not measured``) for each target."""
    out = {}
    for key, target in TARGETS.items():
        value = figures.get(key)
        if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
            out[key] = "not measured"
        else:
            out[key] = "met" if value <= target else "MISSED"
    return out
