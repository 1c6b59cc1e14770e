"""The one token bucket (control.tokenbucket) every limit in Regio spends from."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from control.tokenbucket import TokenBucket


@given(rate=st.floats(0.1, 1000), burst=st.floats(1, 1000),
       steps=st.lists(st.tuples(st.floats(0, 5), st.floats(0.1, 50)), max_size=60))
def test_never_spends_more_than_burst_plus_refill(
        rate: float, burst: float, steps: list[tuple[float, float]]) -> None:
    bucket = TokenBucket(rate, burst, 0.0)
    now = spent = 0.0
    for gap, amount in steps:
        now += gap
        before = bucket.refill(now)
        granted = bucket.take(now, amount)
        assert granted == (before >= amount)
        spent += amount if granted else 0.0
        assert spent <= burst + rate * now + 1e-6
        assert 0.0 <= bucket.tokens <= burst
        if not granted:
            assert abs(bucket.wait(amount) - (amount - bucket.tokens) / rate) < 1e-9


def test_wait_says_when_the_next_token_comes() -> None:
    bucket = TokenBucket(2.0, 1.0, 0.0)
    assert bucket.take(0.0) and not bucket.take(0.0)
    assert bucket.wait() == 0.5
    assert not bucket.take(0.4) and bucket.take(0.5)
