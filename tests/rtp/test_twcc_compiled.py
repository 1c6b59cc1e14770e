"""The TWCC codec's compiled loops (router/rtp/_twcc.c) against their Python reference.

The compiled functions must give the reference's statuses, deltas and bytes on everything the
reference accepts, and hand back None (never raise, never guess) on everything it refuses, so
the caller's fallback raises the reference's own error. Arbitrary bytes and arbitrary model
values are included, not only packets our own encoder would make.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import router.rtp._twcc as compiled
from router.rtp import RtcpDecodeError, RtcpEncodeError, TransportCc, twcc
from tests.rtp.strategies import twcc_packets


def _body(fb: TransportCc) -> bytes:
    """The feedback after its 4-byte RTCP header (what the compound parser hands decode)."""
    return fb.build()[4:]


def _reference_decode(body: bytes, count: int) -> tuple[bytes, tuple[int, ...]] | None:
    try:
        return twcc.py_decode_fci(body, count)
    except RtcpDecodeError:
        return None


def _reference_encode(statuses: bytes, deltas: tuple[int, ...]) -> bytes | None:
    try:
        return twcc.py_encode_fci(statuses, deltas)
    except RtcpEncodeError:
        return None


@given(twcc_packets())
@settings(max_examples=300)
def test_decode_matches_on_valid_feedback(fb: TransportCc) -> None:
    body = _body(fb)
    assert compiled.decode_fci(body, len(fb.statuses)) == twcc.py_decode_fci(body, len(fb.statuses))
    assert compiled.decode_fci(memoryview(body), len(fb.statuses)) == (fb.statuses, fb.deltas)


@given(st.binary(max_size=120), st.integers(0, 0xFFFF))
@settings(max_examples=500)
def test_decode_matches_on_arbitrary_bytes(body: bytes, count: int) -> None:
    assert compiled.decode_fci(body, count) == _reference_decode(body, count)


@given(twcc_packets(), st.data())
@settings(max_examples=300)
def test_decode_matches_on_damaged_feedback(fb: TransportCc, data: st.DataObject) -> None:
    body = bytearray(_body(fb))
    cut = data.draw(st.integers(0, len(body)))
    extra = data.draw(st.binary(max_size=9))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(body) - 1), st.integers(0, 255))))
    for at, value in flips:
        body[at] = value
    damaged = bytes(body[:cut]) + extra
    count = data.draw(st.sampled_from([len(fb.statuses), len(fb.statuses) + 1, 0]))
    assert compiled.decode_fci(damaged, count) == _reference_decode(damaged, count)


@given(twcc_packets())
@settings(max_examples=300)
def test_encode_matches_on_valid_model(fb: TransportCc) -> None:
    assert compiled.encode_fci(fb.statuses, fb.deltas) == twcc.py_encode_fci(
        fb.statuses, fb.deltas
    )


@given(
    st.binary(max_size=60).map(lambda b: bytes(x % 6 for x in b)),
    st.lists(st.integers(-0x9000, 0x9000) | st.integers(), max_size=60).map(tuple),
)
@settings(max_examples=500)
def test_encode_matches_on_arbitrary_model(statuses: bytes, deltas: tuple[int, ...]) -> None:
    assert compiled.encode_fci(statuses, deltas) == _reference_encode(statuses, deltas)


@given(twcc_packets(), st.data())
@settings(max_examples=200)
def test_encode_matches_with_matching_counts_and_any_deltas(
    fb: TransportCc, data: st.DataObject
) -> None:
    deltas = tuple(
        data.draw(st.integers(-0x8001, 0x8000) | st.sampled_from([0, 255, 256, -1]))
        for _ in fb.deltas
    )
    assert compiled.encode_fci(fb.statuses, deltas) == _reference_encode(fb.statuses, deltas)


def test_encode_refuses_values_of_other_types() -> None:
    assert compiled.encode_fci(b"\x01", (1.0,)) is None
    assert compiled.encode_fci(bytearray(b"\x01"), (1,)) is None
    assert compiled.encode_fci(b"\x01", [1]) is None  # type: ignore[arg-type]
    assert compiled.encode_fci(b"\x01", (True,)) is None


@pytest.mark.parametrize(
    ("fb", "message"),
    [
        (TransportCc(1, 2, 3, 4, 5, b"\x04", ()), "status 4 is not 0, 1, 2 or 3"),
        (TransportCc(1, 2, 3, 4, 5, b"\x01\x01", (1,)), "2 statuses with a delta but 1 deltas"),
        (TransportCc(1, 2, 3, 4, 5, b"\x01", (256,)), "small delta 256 out of range"),
        (TransportCc(1, 2, 3, 4, 5, b"\x02", (-0x8001,)), "large delta -32769 out of range"),
    ],
)
def test_build_raises_the_reference_error_on_the_compiled_path(
    fb: TransportCc, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(twcc, "_compiled", compiled)
    with pytest.raises(RtcpEncodeError, match=message):
        fb.build()


@pytest.mark.parametrize("use_compiled", [True, False])
def test_decode_errors_are_the_reference_errors(
    use_compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(twcc, "_compiled", compiled if use_compiled else None)
    head = (1).to_bytes(4, "big") + (2).to_bytes(4, "big") + (7).to_bytes(2, "big")
    ref = (5 << 8).to_bytes(4, "big")
    truncated_chunks = head + (3).to_bytes(2, "big") + ref
    with pytest.raises(RtcpDecodeError, match="chunks truncated: 0 of 3"):
        TransportCc.decode(15, truncated_chunks, b"")
    truncated_deltas = head + (1).to_bytes(2, "big") + ref + bytes.fromhex("2001")
    with pytest.raises(RtcpDecodeError, match="deltas truncated: need 19"):
        TransportCc.decode(15, truncated_deltas, b"")
    long_padding = head + (1).to_bytes(2, "big") + ref + bytes.fromhex("200105") + bytes(4)
    with pytest.raises(RtcpDecodeError, match="4 bytes after receive deltas"):
        TransportCc.decode(15, long_padding, b"")


@given(twcc_packets())
@settings(max_examples=100)
def test_round_trip_is_the_same_on_both_paths(fb: TransportCc) -> None:
    wire = fb.build()
    saved = twcc._compiled
    try:
        twcc._compiled = None
        reference_wire = fb.build()
        reference_back = TransportCc.decode(15, memoryview(wire)[4:], wire)
    finally:
        twcc._compiled = saved
    assert wire == reference_wire
    assert TransportCc.decode(15, memoryview(wire)[4:], wire) == reference_back == fb
