"""control.jsonlimits: every failure of untrusted JSON is one JsonRefused (issue 15 item 5)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.jsonlimits import JsonRefused, loads_limited, nesting_depth

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=20,
)


def _wrap(value: Any, depth: int, as_object: bool) -> Any:
    for _ in range(depth):
        value = {"k": value} if as_object else [value]
    return value


@given(json_values)
def test_values_within_the_limit_round_trip(value: Any) -> None:
    depth = nesting_depth(value)
    assert loads_limited(json.dumps(value), max_depth=max(depth, 1)) == value
    assert loads_limited(json.dumps(value).encode("utf-16"), max_depth=max(depth, 1)) == value


@given(st.integers(1, 60), st.integers(1, 40), st.booleans())
def test_depth_past_the_limit_is_refused(depth: int, limit: int, as_object: bool) -> None:
    text = json.dumps(_wrap(1, depth, as_object))
    if depth > limit:
        with pytest.raises(JsonRefused) as info:
            loads_limited(text, max_depth=limit)
        assert info.value.reason == "too_deep"
    else:
        assert nesting_depth(loads_limited(text, max_depth=limit)) == depth


@given(st.binary(max_size=200) | st.text(alphabet='[]{}",:0123456789\\eE.-+ tfn', max_size=200))
def test_arbitrary_input_only_ever_raises_json_refused(data: bytes | str) -> None:
    try:
        loads_limited(data, max_depth=8)
    except JsonRefused as exc:
        assert exc.reason in ("malformed", "encoding", "too_deep") and exc.message


@pytest.mark.parametrize(("data", "reason"), [
    ("[" * 100_000, "too_deep"),
    ("1" * 5000, "malformed"),
    (b"\xff\xfe\xfe", "encoding"),
    ('"unterminated' + "\\\\" * 10_000, "malformed"),
])
def test_hostile_inputs(data: str | bytes, reason: str) -> None:
    with pytest.raises(JsonRefused) as info:
        loads_limited(data)
    assert info.value.reason == reason
