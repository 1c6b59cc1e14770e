"""Arbitrary and mutated bytes: the parsers raise their own error type and nothing else."""

from __future__ import annotations

import contextlib
import struct

from hypothesis import given
from hypothesis import strategies as st

from tests.stun.strategies import messages
from turn.stun import (
    ATTRIBUTE_CLASSES,
    StunDecodeError,
    StunMessage,
    decode_channel_data,
    is_channel_data,
    is_stun,
    parse_message,
    peek_attribute,
    peek_header,
)

HEADER = b"\x00\x01"


def _probe(data: bytes) -> None:
    is_stun(data)
    is_channel_data(data)
    for parse in (parse_message, peek_header, decode_channel_data):
        with contextlib.suppress(StunDecodeError):
            parse(data)
    with contextlib.suppress(StunDecodeError):
        peek_attribute(data, 0x0006)
    try:
        msg = parse_message(data, check_fingerprint=False)
    except StunDecodeError:
        return
    msg.integrity_ok(b"k")
    msg.integrity_sha256_ok(b"k")
    assert msg.unknown_required == tuple(
        dict.fromkeys(t for t in msg.unknown_required if t < 0x8000)
    )


@given(data=st.binary(max_size=120))
def test_arbitrary_bytes(data: bytes) -> None:
    _probe(data)


attribute_soup = st.lists(
    st.tuples(
        st.sampled_from([*ATTRIBUTE_CLASSES, 0x0008, 0x001C, 0x8028, 0x7777, 0xC0DE]),
        st.binary(max_size=24),
        st.integers(-2, 2),
    ),
    max_size=8,
)


@given(
    tid=st.binary(min_size=12, max_size=12), soup=attribute_soup, msg_type=st.integers(0, 0x3FFF)
)
def test_valid_header_with_attribute_soup(
    tid: bytes, soup: list[tuple[int, bytes, int]], msg_type: int
) -> None:
    body = b"".join(
        struct.pack(">HH", t, max(0, len(v) + skew)) + v + bytes(-len(v) % 4) for t, v, skew in soup
    )
    data = struct.pack(">HHI", msg_type, len(body) & 0xFFFF, 0x2112A442) + tid + body
    _probe(data)


@given(
    msg=messages,
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1, max_size=4),
)
def test_bit_flipped_valid_messages(msg: StunMessage, flips: list[tuple[int, int]]) -> None:
    wire = bytearray(msg.encode(integrity_key=b"k", fingerprint=True))
    for pos, bit in flips:
        wire[pos % len(wire)] ^= 1 << bit
    _probe(bytes(wire))


@given(msg=messages, cut=st.integers(0, 10_000))
def test_truncated_valid_messages(msg: StunMessage, cut: int) -> None:
    wire = msg.encode(fingerprint=True)
    _probe(wire[: cut % (len(wire) + 1)])
