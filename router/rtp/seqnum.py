"""Wraparound arithmetic for RTP sequence numbers (16 bit) and timestamps (32 bit).

RTP counters wrap, so ``a > b`` is meaningless on the raw values: every comparison here is
serial-number arithmetic (RFC 1982 style) that treats the half of the number space ahead of ``b``
as newer. The unwrappers turn wrapped values into monotone extended integers (RFC 3550 A.1:
roll-over count times 2**bits plus the wire value) so that loss, jitter and NACK bookkeeping can
use plain integer arithmetic.
"""

from __future__ import annotations

__all__ = [
    "SeqUnwrapper",
    "TimestampUnwrapper",
    "Unwrapper",
    "seq_add",
    "seq_diff",
    "seq_distance",
    "seq_is_newer",
    "ts_add",
    "ts_diff",
    "ts_distance",
    "ts_is_newer",
]

_SEQ_MOD = 1 << 16
_SEQ_MASK = _SEQ_MOD - 1
_SEQ_HALF = 1 << 15
_TS_MOD = 1 << 32
_TS_MASK = _TS_MOD - 1
_TS_HALF = 1 << 31


def seq_is_newer(a: int, b: int) -> bool:
    """True if sequence number ``a`` comes after ``b`` (modulo 2**16).

    Exactly half the space apart is ambiguous; like libwebrtc we break the tie by raw value so
    that ``seq_is_newer(a, b)`` and ``seq_is_newer(b, a)`` are never both true.
    """
    d = (a - b) & _SEQ_MASK
    if d == _SEQ_HALF:
        return a > b
    return 0 < d < _SEQ_HALF


def seq_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` modulo 2**16, in ``[-32768, 32767]``."""
    return ((a - b + _SEQ_HALF) & _SEQ_MASK) - _SEQ_HALF


def seq_distance(a: int, b: int) -> int:
    """Forward distance from ``a`` to ``b`` (how many increments take ``a`` to ``b``)."""
    return (b - a) & _SEQ_MASK


def seq_add(a: int, n: int) -> int:
    """``a + n`` wrapped to 16 bits (``n`` may be negative)."""
    return (a + n) & _SEQ_MASK


def ts_is_newer(a: int, b: int) -> bool:
    """True if RTP timestamp ``a`` comes after ``b`` (modulo 2**32); ties as in seq_is_newer."""
    d = (a - b) & _TS_MASK
    if d == _TS_HALF:
        return a > b
    return 0 < d < _TS_HALF


def ts_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` modulo 2**32, in ``[-2**31, 2**31 - 1]``."""
    return ((a - b + _TS_HALF) & _TS_MASK) - _TS_HALF


def ts_distance(a: int, b: int) -> int:
    """Forward distance from timestamp ``a`` to ``b``."""
    return (b - a) & _TS_MASK


def ts_add(a: int, n: int) -> int:
    """``a + n`` wrapped to 32 bits (``n`` may be negative)."""
    return (a + n) & _TS_MASK


class Unwrapper:
    """Extends a wrapping ``bits``-wide counter into a monotone integer (RFC 3550 A.1 style).

    The extended value is ``roll_over_count * 2**bits + value``. The reference is the highest
    value seen so far, so packets reordered by less than half the number space land on the right
    side of a wrap: a late 65535 arriving after 0 and 1 unwraps to 65535, not 131071. The
    first value starts roll-over count 0; a value older than it across the wrap therefore
    unwraps to a negative number, which keeps differences exact rather than guessing a cycle.

    Not a frozen dataclass: this is per-stream mutable state, kept tiny (``__slots__``).
    """

    __slots__ = ("_half", "_highest", "_mask")

    def __init__(self, bits: int = 16) -> None:
        if not 1 <= bits <= 64:
            raise ValueError(f"unwrapper width must be 1..64 bits, got {bits}")
        self._mask = (1 << bits) - 1
        self._half = 1 << (bits - 1)
        self._highest: int | None = None

    @property
    def highest(self) -> int | None:
        """The highest extended value returned so far (None before the first call)."""
        return self._highest

    @property
    def roll_over_count(self) -> int:
        """Number of completed wraps of the highest value seen (0 before the first call)."""
        if self._highest is None:
            return 0
        return self._highest >> (self._mask.bit_length())

    def peek(self, value: int) -> int:
        """The extended value of ``value`` without recording it."""
        highest = self._highest
        value &= self._mask
        if highest is None:
            return value
        half = self._half
        diff = ((value - highest + half) & self._mask) - half
        return highest + diff

    def unwrap(self, value: int) -> int:
        """Extend ``value`` and remember it if it is the newest seen."""
        ext = self.peek(value)
        if self._highest is None or ext > self._highest:
            self._highest = ext
        return ext


class SeqUnwrapper(Unwrapper):
    """Unwrapper for 16-bit RTP sequence numbers."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(16)


class TimestampUnwrapper(Unwrapper):
    """Unwrapper for 32-bit RTP timestamps."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(32)
