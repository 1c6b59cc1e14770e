"""Anti-amplification for unauthenticated UDP answers: a cumulative byte budget per source.

The rule (ARCHITECTURE.md §7): no input may make the node answer with more bytes than it
received before authentication. Over UDP the source address is spoofable, so a 401 challenge,
a 400 or a Binding answer is a reflection vector. Checking each answer against its own request
is too strict for real clients: browsers and aioice open with a 36-byte Allocate, the smallest
401 is 52 bytes, and such a client could never get in. So, like QUIC's anti-amplification
limit (RFC 9000 §8.1) at factor 1, we keep a budget per unauthenticated source transport address
(the five-tuple): bytes received from it and bytes sent to it, and we answer only while
``sent + answer <= received``. An answer that does not fit is not held back for later (nothing
is queued); it is dropped and counted ``amplification_deferred``. The client's STUN
retransmission of the same request adds its bytes to the budget, so the second (or third) copy
gets the 401. Over any sequence of datagrams from one source, bytes sent never exceed bytes
received.

A request's bytes are credited when it is about to get an unauthenticated answer (the handler
calls :meth:`AmplificationBudget.received` then :meth:`AmplificationBudget.spend`), so clients
that authenticate on every request never enter the table, and a request that gets no answer
at all (rate-limited, malformed) is simply not credited, which only errs on the safe side.

The table is bounded: an entry expires ``ttl`` seconds after it was last touched and the least
recently touched entry is evicted when ``max_entries`` is reached. Forgetting an entry is safe:
both its counters go, so the next answer again needs bytes received after that point. A source
that authenticates has its entry removed (its later answers are authenticated; an occasional
unauthenticated one, such as a 438, starts a fresh budget).

``slack`` is an operator opt-in (``--udp-challenge-slack``): bytes a fresh budget starts with,
so a first answer may exceed its request by that much. 0, the default, keeps the rule exact.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Final

from turn.server.allocation import FiveTuple

DEFAULT_TTL: Final = 30.0
DEFAULT_MAX_ENTRIES: Final = 65536


class _Entry:
    __slots__ = ("received", "sent", "touched")

    def __init__(self, received: int, touched: float) -> None:
        self.received = received
        self.sent = 0
        self.touched = touched


class AmplificationBudget:
    """Bytes received from and sent to each unauthenticated UDP source."""

    __slots__ = ("_entries", "counters", "max_entries", "slack", "ttl")

    def __init__(self, *, slack: int = 0, ttl: float = DEFAULT_TTL,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
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
            self._entries[ft] = _Entry(size + self.slack, now)
            self.counters["tracked"] += 1
            return
        entry.received += size
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
