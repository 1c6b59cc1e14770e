"""Type stub for the compiled helper ``router/forwarding/_gcc.c``."""

from collections import deque

class DelayDetector:
    state: int
    def __init__(
        self,
        group_span: float,
        window: int,
        smoothing: float,
        gain: float,
        overuse_time: float,
        k_up: float,
        k_down: float,
        threshold: float,
    ) -> None: ...
    def feed(
        self,
        results: list[tuple[float, float | None, int]],
        acked: deque[tuple[float, int]],
        window: float,
    ) -> tuple[int, int, int]: ...
    def fields(self) -> dict[str, object]: ...
