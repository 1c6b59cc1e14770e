"""A UDP impairment proxy (loss with Gilbert-Elliott bursts, delay, jitter, reordering, a
rate cap) for benchmarks and tests, changeable while it runs; ``regio impair`` runs it alone.

:mod:`benchmarks.impair.model` decides the fate of each datagram (sans-IO, seeded);
:mod:`benchmarks.impair.proxy` moves datagrams on loopback sockets under Trio.
"""

from __future__ import annotations

from benchmarks.impair.model import Impairment, ImpairmentSettings
from benchmarks.impair.proxy import ImpairmentProxy

__all__ = ["Impairment", "ImpairmentProxy", "ImpairmentSettings"]
