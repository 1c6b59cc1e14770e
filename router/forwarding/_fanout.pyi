"""Type stub for the compiled helper ``router/forwarding/_fanout.c``."""

DONE: int
NEED_TW_TAIL: int
NEED_TAIL: int
SLOW: int

def fan_out(*args: object) -> int: ...
def twcc_results(*args: object) -> list[tuple[float, float | None, int]] | None: ...
def read_transport_seq(packet: bytes | bytearray | memoryview, ext_id: int) -> int: ...
