"""``outgoing_tail`` on one-byte blocks (the compacting fast path) against the RFC 8285 meaning:
a subscriber parses exactly the publisher's elements mapped through the table, stripped ones
gone, abs-send-time appended, and the same payload and padding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.forwarding.packet import outgoing_tail
from router.rtp import HeaderExtension, RtpDecodeError, RtpPacket, make_extension_block

elements = st.lists(st.builds(HeaderExtension, st.integers(1, 14), st.binary(min_size=1,
                                                                             max_size=16)),
                    max_size=6)


@given(elements, st.binary(min_size=256, max_size=256), st.integers(0, 255),
       st.integers(0, 0xFFFFFF), st.binary(max_size=40), st.integers(0, 3),
       st.integers(0, 20))
def test_one_byte_blocks_keep_exactly_the_mapped_elements(
        items: list[HeaderExtension], table: bytes, ast_id: int, ast_value: int,
        payload: bytes, csrcs: int, padding: int) -> None:
    packet = RtpPacket(96, 1, 2, 3, csrcs=tuple(range(csrcs)), payload=payload,
                       padding_size=padding if padding else 0,
                       extension=make_extension_block(items) if items else None).build()
    if not items or packet[12 + 4 * csrcs] != 0xBE:
        return  # not the one-byte form: the general path, tested elsewhere
    b0, tail = outgoing_tail(packet, table, ast_id, ast_value)
    out = RtpPacket.parse(bytes((b0,)) + packet[1:12] + tail)
    expected = [HeaderExtension(table[e.id], e.data) for e in items if 1 <= table[e.id] <= 14]
    if 1 <= ast_id <= 14:
        expected.append(HeaderExtension(ast_id, ast_value.to_bytes(3, "big")))
    got = list(out.extension.elements) if out.extension is not None else []
    assert got == expected
    assert (out.payload, out.padding_size, out.csrcs) == (payload, padding, tuple(range(csrcs)))


def test_a_truncated_one_byte_element_is_refused() -> None:
    packet = bytes((0x90, 96)) + bytes(10) + b"\xbe\xde\x00\x01" + b"\x2f\x00\x00\x00"
    with pytest.raises(RtpDecodeError, match="exceeds"):
        outgoing_tail(packet, bytes(256), 2, 1)
    with pytest.raises(RtpDecodeError, match="exceeds packet"):
        outgoing_tail(packet[:-2], bytes(256), 2, 1)


def _reference_rewrite(packet: bytes, table: bytes) -> bytes | None:
    """The generic rule, element by element: mapped ids in place, others zeroed (padding)."""
    from router.rtp.header_extensions import iter_extension_elements

    start = 12 + 4 * (packet[0] & 0x0F)
    end = start + 4 + 4 * int.from_bytes(packet[start + 2:start + 4], "big")
    out = bytearray(packet)
    for ext_id, pos, size in iter_extension_elements(0xBEDE, packet, start + 4, end):
        new_id = table[ext_id]
        if new_id == ext_id:
            continue
        if 1 <= new_id <= 14:
            out[pos - 1] = (new_id << 4) | (size - 1)
        else:
            out[pos - 1:pos + size] = bytes(size + 1)
    return None if out == packet else bytes(out)


@given(elements, st.binary(min_size=256, max_size=256), st.binary(max_size=40),
       st.integers(0, 3))
def test_one_byte_rewrite_matches_the_generic_rule(
        items: list[HeaderExtension], table: bytes, payload: bytes, csrcs: int) -> None:
    from router.forwarding.packet import rewrite_extensions

    packet = RtpPacket(96, 1, 2, 3, csrcs=tuple(range(csrcs)), payload=payload,
                       extension=make_extension_block(items) if items else None).build()
    if not items or packet[12 + 4 * csrcs] != 0xBE:
        return
    assert rewrite_extensions(packet, table) == _reference_rewrite(packet, table)
