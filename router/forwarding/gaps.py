"""Proactive upstream NACK: the router asks a publisher for what it lost on the way in.

Waiting for subscribers to NACK a packet the router never got costs a subscriber RTT before
the router even asks; asking as soon as the gap shows saves that, and one request serves
every subscriber. Retries are spaced by at least one measured RTT (a retry sooner would ask
again for a repair already on its way) and bounded in count and age.

The RTT to the publisher is measured from the repairs themselves: the time between the last
NACK for a packet and its arrival, smoothed (RFC 6298 style, gain 1/8). A browser publisher
sends no reports the router could take an RTT from (it only sends).
"""

from __future__ import annotations

from router.forwarding.counters import Counters
from router.forwarding.link_config import LinkConfig

__all__ = ["GapTracker"]


class GapTracker:
    """Missing extended sequence numbers of one incoming video stream and their retries."""

    __slots__ = ("_config", "_counters", "_pending", "missing", "rtt")

    def __init__(
        self, config: LinkConfig, pending: dict[GapTracker, None], counters: Counters
    ) -> None:
        self._config = config
        self._counters = counters
        self._pending = pending
        """The forwarder's set of trackers with work due (shared): joined on a new gap."""
        self.missing: dict[int, list[float]] = {}
        """ext -> [next due time, tries so far, last NACK time]."""
        self.rtt = 0.1

    def on_gap(self, first: int, stop: int, now: float) -> None:
        """Packets ``first .. stop-1`` were skipped by the packet just received."""
        if stop - first > self._config.max_gap:
            return
        missing = self.missing
        for ext in range(first, stop):
            missing[ext] = [now, 0, now]
        self._pending[self] = None

    def on_late(self, ext: int, now: float) -> None:
        """A missing packet arrived (a repair, or just reordered)."""
        entry = self.missing.pop(ext, None)
        if entry is None:
            return
        if entry[1]:
            self._counters.nack_recovered += 1
            sample = now - entry[2]
            if sample >= 0:
                self.rtt += (sample - self.rtt) / 8.0
        if not self.missing:
            self._pending.pop(self, None)

    def forget(self) -> None:
        """The stream restarted or ended: nothing old is worth asking for."""
        self.missing.clear()
        self._pending.pop(self, None)

    def due(self, now: float) -> list[int]:
        """Sequence numbers to NACK now; schedules their next retry, drops exhausted ones."""
        cfg = self._config
        interval = max(cfg.nack_min_interval, self.rtt)
        horizon = now - cfg.nack_max_age
        out: list[int] = []
        dead: list[int] = []
        for ext, entry in self.missing.items():
            if entry[0] > now:
                continue
            tries = int(entry[1])
            if tries >= cfg.nack_max_retries or (entry[2] < horizon and tries):
                dead.append(ext)
                continue
            entry[0] = now + interval
            entry[1] = tries + 1
            entry[2] = now
            out.append(ext)
        for ext in dead:
            del self.missing[ext]
            self._counters.nack_given_up += 1
        if not self.missing:
            self._pending.pop(self, None)
        return out

    def deadline(self) -> float | None:
        """The earliest retry due, or None."""
        if not self.missing:
            return None
        return min(entry[0] for entry in self.missing.values())
