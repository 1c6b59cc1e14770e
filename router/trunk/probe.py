"""Link probing, sans-IO: about one small probe a second on each trunk, echoed by the peer.

Probes ride the trunk's SRTCP (an RTCP APP packet, name ``RGPB``), so they are authenticated
and encrypted with the trunk's GCM key and cost nothing to tell apart from forged traffic.
A probe carries its number and the sender's send time; the peer echoes the bytes back at once.
From the echoes: RTT (smoothed like TCP's SRTT, 1/8 gain), jitter (RFC 3550's 1/16-gain mean
deviation of successive RTT samples) and loss (probes of the window with no echo within
``timeout``). These are the figures one :class:`~control.schema.LinkRecord` per directed link
publishes.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

_APP: Final = struct.Struct("!BBHI4sIId")
"""V=2 + subtype, PT=204 (APP), length, SSRC, name, probe number, reserved, send time."""
NAME: Final = b"RGPB"
PROBE: Final = 0
ECHO: Final = 1
PROBE_BYTES: Final = _APP.size


@dataclass(frozen=True, slots=True)
class LinkFigures:
    loss: float
    rtt_ms: float
    jitter_ms: float
    samples: int


def build(kind: int, number: int, sent_at: float) -> bytes:
    return _APP.pack(0x80 | kind, 204, PROBE_BYTES // 4 - 1, 0, NAME, number, 0, sent_at)


def parse(packet: bytes) -> tuple[int, int, float] | None:
    """``(kind, number, sent_at)`` of a probe or echo, or None for any other RTCP."""
    if len(packet) != PROBE_BYTES or packet[1] != 204 or packet[8:12] != NAME:
        return None
    b0, _, _, _, _, number, _, sent_at = _APP.unpack(packet)
    kind = b0 & 0x1F
    if kind not in (PROBE, ECHO):
        return None
    return kind, number, sent_at


class LinkProber:
    """Probes one peer; :meth:`probe_due` gives the next probe, :meth:`on_echo` takes echoes."""

    def __init__(self, now: float, interval: float = 1.0, window: int = 10,
                 timeout: float = 2.0) -> None:
        self.interval = interval
        self.window = window
        self.timeout = timeout
        self._next = now
        self._number = 0
        self._outstanding: OrderedDict[int, float] = OrderedDict()
        self._results: list[bool] = []
        """Answered (True) or lost (False), oldest first, at most ``window``."""
        self.srtt: float | None = None
        self.jitter = 0.0
        self._last_rtt: float | None = None

    def get_timer(self) -> float:
        return self._next

    def probe_due(self, now: float) -> bytes | None:
        """Expire unanswered probes; the next probe if one is due."""
        while self._outstanding:
            number, sent = next(iter(self._outstanding.items()))
            if now - sent < self.timeout:
                break
            del self._outstanding[number]
            self._record(False)
        if now < self._next:
            return None
        self._next = now + self.interval
        self._number = (self._number + 1) & 0xFFFFFFFF
        self._outstanding[self._number] = now
        return build(PROBE, self._number, now)

    def on_echo(self, number: int, now: float) -> bool:
        """An echo came back; False for an unknown or expired probe (not counted)."""
        sent = self._outstanding.pop(number, None)
        if sent is None:
            return False
        rtt = max(0.0, now - sent)
        self.srtt = rtt if self.srtt is None else self.srtt + (rtt - self.srtt) / 8
        if self._last_rtt is not None:
            self.jitter += (abs(rtt - self._last_rtt) - self.jitter) / 16
        self._last_rtt = rtt
        self._record(True)
        return True

    def _record(self, answered: bool) -> None:
        self._results.append(answered)
        if len(self._results) > self.window:
            del self._results[0]

    def figures(self) -> LinkFigures | None:
        """Current figures, or None before the first probe was answered or lost."""
        if not self._results:
            return None
        lost = self._results.count(False)
        return LinkFigures(lost / len(self._results), (self.srtt or 0.0) * 1000,
                           self.jitter * 1000, len(self._results))


__all__ = ["ECHO", "PROBE", "LinkFigures", "LinkProber", "build", "parse"]
