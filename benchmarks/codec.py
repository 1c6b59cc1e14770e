"""``regio bench codec``: nanoseconds per codec operation on the hot path.

Each case is a zero-argument callable from the codec's own benchmark module. We calibrate a
loop count so one timing run lasts about ``target_seconds``, repeat, and report the best and the
median run: the best approximates the cost without interference from the other core, the median
shows how noisy the machine was.
"""

from __future__ import annotations

import gc
import importlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

CASE_MODULES = ("benchmarks.codec_stun", "benchmarks.codec_rtp", "benchmarks.forwarding")


@dataclass(frozen=True, slots=True)
class CodecFigure:
    name: str
    best_ns: float
    median_ns: float
    loops: int
    repeats: int


def load_cases() -> list[tuple[str, Callable[[], object]]]:
    cases: list[tuple[str, Callable[[], object]]] = []
    for module_name in CASE_MODULES:
        module = importlib.import_module(module_name)
        cases.extend(module.cases())
    return cases


def measure(
    function: Callable[[], object], *, target_seconds: float = 0.2, repeats: int = 5
) -> tuple[float, float, int]:
    loops = 1
    while True:
        elapsed = _time_loops(function, loops)
        if elapsed >= target_seconds / 4 or loops >= 1 << 24:
            break
        loops *= 4
    loops = max(1, int(loops * target_seconds / max(elapsed, 1e-9)))
    per_op = [_time_loops(function, loops) / loops * 1e9 for _ in range(repeats)]
    return min(per_op), statistics.median(per_op), loops


def _time_loops(function: Callable[[], object], loops: int) -> float:
    iterations = range(loops)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in iterations:
            function()
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def run(
    *, target_seconds: float = 0.2, repeats: int = 5, name_filter: str | None = None
) -> list[CodecFigure]:
    figures = []
    for name, function in load_cases():
        if name_filter and name_filter.lower() not in name.lower():
            continue
        function()  # warm up caches and fail loudly before timing
        best, median, loops = measure(function, target_seconds=target_seconds, repeats=repeats)
        figures.append(CodecFigure(name, best, median, loops, repeats))
    return figures
