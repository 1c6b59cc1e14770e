"""The link prober with virtual time: RTT, jitter and loss from echoes; the probe codec."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from router.trunk.probe import ECHO, PROBE, LinkProber, build, parse


@given(st.sampled_from([PROBE, ECHO]), st.integers(0, 2**32 - 1), st.floats(0, 1e9))
def test_probe_codec_round_trips(kind: int, number: int, sent_at: float) -> None:
    assert parse(build(kind, number, sent_at)) == (kind, number, sent_at)


@given(st.binary(max_size=64))
def test_other_rtcp_is_not_a_probe(data: bytes) -> None:
    parsed = parse(data)
    assert parsed is None or build(*parsed) == data


def test_figures_follow_loss_and_delay() -> None:
    rng = random.Random(7)
    prober = LinkProber(0.0, window=50)
    now = 0.0
    for _ in range(1400):
        now += 0.05
        probe = prober.probe_due(now)
        if probe is None:
            continue
        _, number, _ = parse(probe)  # type: ignore[misc]
        if rng.random() < 0.2:
            continue  # lost
        prober.on_echo(number, now + 0.040 + rng.uniform(0, 0.004))
    figures = prober.figures()
    assert figures is not None and figures.samples == 50
    assert 0.05 < figures.loss < 0.4
    assert 38 < figures.rtt_ms < 46
    assert 0.1 < figures.jitter_ms < 4
    assert not prober.on_echo(123456, now)  # unknown probe: ignored
