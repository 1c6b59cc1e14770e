"""Path choice for trunk media, sans-IO: direct, or through one relay router, per directed flow.

Cost of a path = expected one-way delay (half the RTT plus the jitter of each hop, in ms) +
``loss_penalty_ms`` x the path's loss (1 - product of each hop's delivery). A missing link
measurement makes a relay path unusable; the direct path is always usable (unmeasured counts as
perfect, so a new trunk starts direct).

Residency (docs/architecture.md §4): a relay must be in the source's or the destination's
jurisdiction, and for a room of policy ``eea`` in the EEA; :func:`allowed_relays` is the only
place candidates are admitted, and a flow carrying any ``eea`` room uses the strict rule.

Hysteresis: a better path replaces the current one only after it stayed better by ``margin``
(relative) and ``min_gain_ms`` (absolute) for ``hold`` seconds; a current path that becomes
unusable (relay gone, not allowed any more) is replaced at once. When the chosen path loses
more than ``dual_loss``, packets also go over the best path disjoint from it (no shared hop);
the receiver drops the second copy by SRTP index. That second path is added at once (loss is
hurting now) and removed only after the primary stayed clean for ``hold`` seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

RESTRICTED = "EEA"


@dataclass(frozen=True, slots=True)
class LinkState:
    loss: float
    rtt_ms: float
    jitter_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Path:
    """``(src, dst)`` direct, or ``(src, relay, dst)``."""

    hops: tuple[str, ...]

    @property
    def relay(self) -> str | None:
        return self.hops[1] if len(self.hops) == 3 else None

    def links(self) -> list[tuple[str, str]]:
        return list(zip(self.hops, self.hops[1:], strict=False))

    def disjoint(self, other: Path) -> bool:
        return not set(self.links()) & set(other.links())

    def label(self) -> str:
        return "direct" if self.relay is None else f"via {self.relay}"


@dataclass(frozen=True, slots=True)
class PathConfig:
    loss_penalty_ms: float = 1000.0
    """Milliseconds of delay one unit of loss (100 %) is worth: 1 % loss = 10 ms."""
    margin: float = 0.2
    """A challenger must be cheaper by this fraction of the current cost..."""
    min_gain_ms: float = 5.0
    """...and by at least this many milliseconds..."""
    hold: float = 1.0
    """...for this many seconds before the flow switches."""
    dual_loss: float = 0.02
    """Above this loss on the chosen path, a disjoint second path carries copies."""


def allowed_relays(src: str, dst: str, candidates: Iterable[str],
                   jurisdiction_of: Mapping[str, str], strict: bool) -> list[str]:
    """Relays a flow ``src -> dst`` may use: in the source's or destination's jurisdiction;
    with ``strict`` (an ``eea`` room), in the EEA only. Unknown jurisdictions are refused."""
    ends = {jurisdiction_of.get(src), jurisdiction_of.get(dst)}
    out = []
    for relay in candidates:
        if relay in (src, dst):
            continue
        j = jurisdiction_of.get(relay)
        if j is None or j not in ends:
            continue
        if strict and j != RESTRICTED:
            continue
        out.append(relay)
    return sorted(out)


def path_figures(path: Path, links: Mapping[tuple[str, str], LinkState]
                 ) -> tuple[float, float] | None:
    """``(delay_ms, loss)`` of a path, or None if a relay hop is unmeasured."""
    delay = 0.0
    delivered = 1.0
    for link in path.links():
        state = links.get(link)
        if state is None:
            if path.relay is None:
                return (0.0, 0.0)
            return None
        delay += state.rtt_ms / 2 + state.jitter_ms
        delivered *= 1.0 - state.loss
    return delay, 1.0 - delivered


@dataclass(frozen=True, slots=True)
class PathChoice:
    primary: Path
    secondary: Path | None


class PathChooser:
    """The path of one directed flow ``src -> dst`` (see the module docstring)."""

    def __init__(self, src: str, dst: str, config: PathConfig | None = None) -> None:
        self.src = src
        self.dst = dst
        self.config = config or PathConfig()
        self.current = Path((src, dst))
        self.secondary: Path | None = None
        self.switches = 0
        self._challenger: Path | None = None
        self._challenger_since = 0.0
        self._clean_since: float | None = None

    def cost(self, path: Path, links: Mapping[tuple[str, str], LinkState]) -> float | None:
        figures = path_figures(path, links)
        if figures is None:
            return None
        delay, loss = figures
        return delay + self.config.loss_penalty_ms * loss

    def update(self, links: Mapping[tuple[str, str], LinkState], relays: Iterable[str],
               now: float) -> PathChoice:
        """Re-evaluate with the current link map and the allowed relays."""
        cfg = self.config
        candidates = [Path((self.src, self.dst))]
        candidates += [Path((self.src, r, self.dst)) for r in relays]
        costs = {p: c for p in candidates if (c := self.cost(p, links)) is not None}
        best = min(costs, key=lambda p: (costs[p], len(p.hops), p.hops))
        current_cost = costs.get(self.current)
        if current_cost is None:  # the relay went away or is no longer allowed
            self._switch(best)
        elif best != self.current:
            gain = current_cost - costs[best]
            if gain >= cfg.min_gain_ms and gain >= cfg.margin * current_cost:
                if self._challenger != best:
                    self._challenger, self._challenger_since = best, now
                elif now - self._challenger_since >= cfg.hold:
                    self._switch(best)
            else:
                self._challenger = None
        else:
            self._challenger = None
        figures = path_figures(self.current, links)
        loss = figures[1] if figures is not None else 1.0
        if loss > cfg.dual_loss:
            self._clean_since = None
            spare = [p for p in costs if p != self.current and p.disjoint(self.current)]
            if spare:
                self.secondary = min(spare, key=lambda p: (costs[p], p.hops))
        elif self.secondary is not None:
            if self._clean_since is None:
                self._clean_since = now
            elif now - self._clean_since >= cfg.hold:
                self.secondary = None
        if self.secondary is not None and self.secondary not in costs:
            self.secondary = None
        return PathChoice(self.current, self.secondary)

    def _switch(self, path: Path) -> None:
        if path != self.current:
            self.current = path
            self.switches += 1
        self._challenger = None
        if self.secondary == path:
            self.secondary = None


__all__ = ["LinkState", "Path", "PathChoice", "PathChooser", "PathConfig", "allowed_relays",
           "path_figures"]
