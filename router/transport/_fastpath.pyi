"""Type stub for the compiled helper ``router/transport/_fastpath.c``."""

from typing import Any

CHUNK: int
RECV_SLOT: int
#: The socket option that makes ``recv_batch``'s ``stamps`` non-zero (Python lacks it).
SO_TIMESTAMPNS: int

def protect_batch(func: int, session: int, packets: list[bytes], max_length: int,
                  trailer: int, dest: object, out: list[Any]) -> int: ...
def send_batch(fd: int, family: int, items: list[Any]) -> tuple[int, int, int]: ...
def recv_batch(fd: int, limit: int, out: list[Any],
               stamps: list[int] | None = None) -> tuple[int, int, int]: ...
def rewrite_one_byte(packet: bytes | bytearray | memoryview, pos: int, end: int,
                     table: bytes) -> bytes | int | None: ...
