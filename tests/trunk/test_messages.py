"""The trunk control codec: every message round-trips; any other input is a TrunkDecodeError
(never another exception), including gaps in the message numbers."""

from __future__ import annotations

import contextlib
import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.trunk.messages import (
    ChatRelay,
    FrameReader,
    Hello,
    KeyframeRequest,
    LinkReport,
    ParticipantAnnounce,
    ParticipantWithdraw,
    SrtpKey,
    SrtpKeyAck,
    Subscribe,
    TrackAnnounce,
    TrackWithdraw,
    TrunkDecodeError,
    Unsubscribe,
    encode_message,
)

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True)
text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), min_size=1, max_size=40)
messages = st.one_of(
    st.builds(Hello, names, text, text),
    st.builds(TrackAnnounce, names, text, text, st.sampled_from(["audio", "video"]), names,
              st.integers(1, 96000), st.none() | st.integers(1, 2), st.integers(0, 127),
              st.lists(st.tuples(names, text), max_size=3).map(tuple),
              st.lists(text, max_size=3).map(tuple),
              st.lists(st.tuples(text, st.integers(1, 14)), max_size=3).map(tuple)),
    st.builds(TrackWithdraw, names, text),
    st.builds(ParticipantAnnounce, names, names, st.none() | text),
    st.builds(ParticipantWithdraw, names, names),
    st.builds(ChatRelay, names, names, text),
    st.builds(Subscribe, names, text, st.integers(1, 2**32 - 1)),
    st.builds(Unsubscribe, names, text),
    st.builds(KeyframeRequest, names, text),
    st.builds(SrtpKey, st.integers(0, 2**31), st.binary(min_size=28, max_size=28)),
    st.builds(SrtpKeyAck, st.integers(0, 2**31)),
    st.builds(LinkReport, st.floats(0, 1), st.floats(0, 1000), st.floats(0, 1000)),
)


@given(st.lists(messages, min_size=1, max_size=5), st.integers(1, 50))
def test_messages_round_trip_in_any_chunking(batch: list, chunk: int) -> None:
    stream = b"".join(encode_message(m, i) for i, m in enumerate(batch))
    reader = FrameReader()
    got = []
    for i in range(0, len(stream), chunk):
        got += reader.feed(stream[i:i + chunk])
    assert got == batch


@given(st.binary(max_size=300))
def test_garbage_is_a_decode_error_or_incomplete(data: bytes) -> None:
    with contextlib.suppress(TrunkDecodeError):
        FrameReader().feed(data)


def frame(obj: object) -> bytes:
    body = json.dumps(obj).encode()
    return struct.pack("!I", len(body)) + body


@pytest.mark.parametrize("obj, why", [
    ({"t": "withdraw", "n": 1, "room": "r", "track": "t"}, "out-of-order"),
    ({"t": "withdraw", "room": "r", "track": "t"}, "without a number"),
    ({"t": "nope", "n": 0}, "unknown"),
    ({"t": "withdraw", "n": 0, "room": "r"}, "fields"),
    ({"t": "withdraw", "n": 0, "room": "r", "track": "t", "extra": 1}, "fields"),
    ({"t": "subscribe", "n": 0, "room": "r", "track": "t", "ssrc": 0}, "integer"),
    ({"t": "subscribe", "n": 0, "room": "r", "track": "t", "ssrc": True}, "integer"),
    ({"t": "srtp_key", "n": 0, "key_id": 1, "key": "AAAA"}, "28 bytes"),
    ({"t": "link", "n": 0, "loss": 2.0, "rtt_ms": 1, "jitter_ms": 1}, "number"),
    ({"t": "hello", "n": 0, "node": "a/b", "region": "x", "jurisdiction": "EEA",
      "version": 1}, "node id"),
    ([1, 2], "object"),
])
def test_precise_refusals(obj: object, why: str) -> None:
    with pytest.raises(TrunkDecodeError, match=why):
        FrameReader().feed(frame(obj))


def test_oversized_frame_is_refused_before_buffering() -> None:
    with pytest.raises(TrunkDecodeError, match="length"):
        FrameReader().feed(struct.pack("!I", 1 << 20))
