"""One deadline for the whole core: a heap of expiry entries with lazy deletion.

Allocations, permissions and channel bindings each push ``(when, seq, kind, owner, key)``; a
refresh pushes a new entry instead of finding the old one, and an entry whose ``when`` no longer
matches its object's expiry is skipped when popped. ``get_timer()`` is the heap's head, so the
driver sleeps on exactly one deadline however many objects exist (no task per object).
"""

from __future__ import annotations

import heapq
from typing import Any


class DeadlineHeap:
    """Min-heap of expiry entries; the payload is opaque to the heap."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Any]] = []
        self._seq = 0

    def push(self, when: float, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, payload))

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[tuple[float, Any]]:
        """Every entry due at ``now``, earliest first."""
        due: list[tuple[float, Any]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, payload = heapq.heappop(heap)
            due.append((when, payload))
        return due

    def __len__(self) -> int:
        return len(self._heap)


__all__ = ["DeadlineHeap"]
