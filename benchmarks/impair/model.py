"""What happens to one datagram on an impaired link (sans-IO: every call takes ``now``).

* Loss: Gilbert-Elliott with a lossless good state and an all-loss bad state. A mean burst of
  ``burst`` packets means leaving the bad state with probability ``1/burst``; entering it with
  ``p = loss * r / (1 - loss)`` keeps the long-run loss at ``loss``. ``burst <= 1`` is plain
  independent (Bernoulli) loss.
* Rate: a bottleneck of ``rate_kbps`` serialises packets one after another (a FIFO); a packet
  that would wait longer than ``queue_ms`` is dropped (a drop-tail buffer), which is what a
  capped access link does and what a bandwidth estimator must notice as growing delay first.
* Delay and jitter: each packet gets ``delay_ms`` plus a uniform ``±jitter_ms``, but never
  overtakes the one before it (jitter without reordering), except:
* Reordering: a ``reorder`` share of packets is held ``reorder_extra_ms`` longer and may be
  overtaken.

Settings can change at any time (``update``); the random generator is seeded, so a run is
reproducible for a given packet sequence and timing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace

__all__ = ["Impairment", "ImpairmentSettings", "ImpairmentStats"]


class SettingsError(ValueError):
    """An impairment setting out of range (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class ImpairmentSettings:
    """One direction's impairment (percentages as 0-100, times in ms, rate in kbit/s)."""

    loss: float = 0.0
    """Long-run share of datagrams lost, percent."""
    burst: float = 1.0
    """Mean length of a loss burst in datagrams (1: independent losses)."""
    delay_ms: float = 0.0
    """One-way delay added to every datagram."""
    jitter_ms: float = 0.0
    """Uniform variation of the delay, plus or minus."""
    reorder: float = 0.0
    """Share of datagrams held back so that later ones overtake them, percent."""
    reorder_extra_ms: float = 10.0
    """How much longer a reordered datagram is held."""
    rate_kbps: float = 0.0
    """Bottleneck rate (0: unlimited)."""
    queue_ms: float = 200.0
    """Bottleneck buffer as queueing time; a datagram that would wait longer is dropped."""

    def __post_init__(self) -> None:
        if not 0 <= self.loss < 100 or not 0 <= self.reorder <= 100:
            raise SettingsError("loss must be in [0, 100) and reorder in [0, 100] percent")
        if self.burst < 1:
            raise SettingsError(f"burst {self.burst} must be at least 1 datagram")
        if min(self.delay_ms, self.jitter_ms, self.rate_kbps, self.reorder_extra_ms) < 0:
            raise SettingsError("delay, jitter, reorder_extra and rate must not be negative")
        if self.queue_ms <= 0:
            raise SettingsError("queue_ms must be positive")

    def changed(self, **values: float) -> ImpairmentSettings:
        """A copy with some fields replaced (unknown names raise :class:`SettingsError`)."""
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise SettingsError(f"unknown impairment setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **{k: float(v) for k, v in values.items()})


@dataclass(slots=True)
class ImpairmentStats:
    """Counts of one direction."""

    received: int = 0
    delivered: int = 0
    lost: int = 0
    """Dropped by the loss model."""
    overflow: int = 0
    """Dropped by the bottleneck buffer."""
    reordered: int = 0


class Impairment:
    """One direction of an impaired link."""

    def __init__(self, settings: ImpairmentSettings, seed: int = 0) -> None:
        self.settings = settings
        self.stats = ImpairmentStats()
        self._rng = random.Random(seed)
        self._bad = False
        self._link_free = 0.0
        self._last_release = 0.0

    def update(self, settings: ImpairmentSettings) -> None:
        """New settings from now on (packets already scheduled keep their times)."""
        self.settings = settings

    def _lost(self) -> bool:
        s = self.settings
        loss = s.loss / 100.0
        if loss <= 0:
            self._bad = False
            return False
        rng = self._rng
        if s.burst <= 1:
            return rng.random() < loss
        leave = 1.0 / s.burst
        if self._bad:
            if rng.random() < leave:
                self._bad = False
        elif rng.random() < loss * leave / (1.0 - loss):
            self._bad = True
        return self._bad

    def decide(self, now: float, size: int) -> float | None:
        """When the datagram of ``size`` bytes arriving ``now`` comes out, or None if lost."""
        s = self.settings
        stats = self.stats
        stats.received += 1
        if self._lost():
            stats.lost += 1
            return None
        t = now
        if s.rate_kbps > 0:
            start = max(now, self._link_free)
            if start - now > s.queue_ms / 1000.0:
                stats.overflow += 1
                return None
            self._link_free = start + size * 8 / (s.rate_kbps * 1000.0)
            t = self._link_free
        delay = s.delay_ms
        if s.jitter_ms:
            delay += self._rng.uniform(-s.jitter_ms, s.jitter_ms)
        t += max(0.0, delay) / 1000.0
        if s.reorder and self._rng.random() < s.reorder / 100.0:
            stats.reordered += 1
            stats.delivered += 1
            return t + s.reorder_extra_ms / 1000.0
        t = max(t, self._last_release)
        self._last_release = t
        stats.delivered += 1
        return t
