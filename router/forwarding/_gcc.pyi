"""Type stub for the compiled helper ``router/forwarding/_gcc.c``."""

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
        max_acked: int,
    ) -> None: ...
    def feed(
        self, results: list[tuple[float, float | None, int]], window: float
    ) -> tuple[int, int]: ...
    def acked_bitrate(self) -> float: ...
    def fields(self) -> dict[str, object]: ...
