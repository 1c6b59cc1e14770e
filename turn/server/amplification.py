"""Anti-amplification for unauthenticated UDP answers: a cumulative byte budget per source.

The rule (ARCHITECTURE.md §7): before a UDP source authenticates, the node never sends it more
than ``factor`` times the bytes it received from it. Over UDP the source address is spoofable,
so a 401 challenge, a 400 or a Binding answer is a reflection vector; the budget bounds what a
spoofer can reflect. The factor is QUIC's before address validation (RFC 9000 §8.1): 3. At 1
(the earlier rule) a real client's first request went unanswered: browsers and aioice open with
a 36-byte Allocate, the smallest 401 is 52 bytes, so every browser paid a STUN retransmission
timeout (250-500 ms) before it had a relay. At 3 the 36-byte Allocate buys 108 bytes, and the
first request of every client we know gets its full answer at once (a Binding success is 44
bytes with SOFTWARE, a 401 with REALM, NONCE, SOFTWARE and FINGERPRINT about 100).

Per unauthenticated source transport address (the five-tuple) we keep bytes received and bytes
sent, and answer only while ``sent + answer <= factor * received``. An answer that does not fit
is dropped, not queued, and counted ``amplification_deferred``; the client's retransmission
adds its bytes. Over any sequence of datagrams from one source, bytes sent never exceed
``factor`` times bytes received.

A request's bytes are credited when it is about to get an unauthenticated answer (the handler
calls :meth:`AmplificationBudget.received` then :meth:`AmplificationBudget.spend`), so clients
that authenticate on every request never enter the table, and a request that gets no answer
at all (rate-limited, malformed) is simply not credited, which only errs on the safe side.

The table is bounded: an entry expires ``ttl`` seconds after it was last touched and the least
recently touched entry is evicted when ``max_entries`` is reached. Forgetting an entry is safe:
both its counters go, so the next answer again needs bytes received after that point. A source
that authenticates has its entry removed (its later answers are authenticated; an occasional
unauthenticated one, such as a 438, starts a fresh budget).

``slack`` is an operator opt-in (``--udp-challenge-slack``): bytes a fresh budget starts with on
top of the factor. 0, the default, keeps the bound exact.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Final

from turn.server.allocation import FiveTuple

DEFAULT_TTL: Final = 30.0
DEFAULT_MAX_ENTRIES: Final = 65536
DEFAULT_FACTOR: Final = 3
"""RFC 9000 §8.1: three times the bytes received before the peer's address is validated."""


class _Entry:
    """``received`` is already multiplied by the factor (it is the allowance)."""

    __slots__ = ("received", "sent", "touched")

    def __init__(self, received: int, touched: float) -> None:
        self.received = received
        self.sent = 0
        self.touched = touched


class AmplificationBudget:
    """Bytes received from and sent to each unauthenticated UDP source."""

    __slots__ = ("_entries", "counters", "factor", "max_entries", "slack", "ttl")

    def __init__(self, *, factor: int = DEFAULT_FACTOR, slack: int = 0,
                 ttl: float = DEFAULT_TTL, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if factor < 1:
            raise ValueError(f"amplification factor {factor} is below 1")
        self.factor = factor
        self.slack = max(slack, 0)
        self.ttl = ttl
        self.max_entries = max(max_entries, 1)
        self._entries: OrderedDict[FiveTuple, _Entry] = OrderedDict()
        #: ``tracked`` (entries created), ``expired``, ``evicted``, ``authenticated``.
        self.counters: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._entries)

    def _prune(self, now: float) -> None:
        entries = self._entries
        horizon = now - self.ttl
        while entries:
            ft, oldest = next(iter(entries.items()))
            if oldest.touched > horizon:
                break
            del entries[ft]
            self.counters["expired"] += 1

    def received(self, ft: FiveTuple, size: int, now: float) -> None:
        """Credit ``size`` bytes that arrived from ``ft``."""
        self._prune(now)
        entry = self._entries.get(ft)
        if entry is None:
            if len(self._entries) >= self.max_entries:
                self._entries.popitem(last=False)
                self.counters["evicted"] += 1
            self._entries[ft] = _Entry(size * self.factor + self.slack, now)
            self.counters["tracked"] += 1
            return
        entry.received += size * self.factor
        entry.touched = now
        self._entries.move_to_end(ft)

    def available(self, ft: FiveTuple) -> int:
        """Bytes that may still be sent to ``ft`` (0 for an unknown source)."""
        entry = self._entries.get(ft)
        return 0 if entry is None else entry.received - entry.sent

    def spend(self, ft: FiveTuple, size: int) -> bool:
        """Charge an answer of ``size`` bytes; False (nothing charged) if it does not fit."""
        entry = self._entries.get(ft)
        if entry is None or entry.sent + size > entry.received:
            return False
        entry.sent += size
        return True

    def authenticated(self, ft: FiveTuple) -> None:
        """``ft`` proved its credentials: its entry goes."""
        if self._entries.pop(ft, None) is not None:
            self.counters["authenticated"] += 1


__all__ = ["AmplificationBudget"]
