"""Type stub for the compiled helper ``router/transport/_fastpath.c``."""

from typing import Any

CHUNK: int
RECV_SLOT: int

def protect_batch(func: int, session: int, packets: list[bytes], max_length: int,
                  trailer: int, dest: object, out: list[Any]) -> int: ...
def send_batch(fd: int, family: int, items: list[Any]) -> tuple[int, int, int]: ...
def recv_batch(fd: int, limit: int, out: list[Any]) -> tuple[int, int, int]: ...
