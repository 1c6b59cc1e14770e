"""``regio bench failover``'s figures from invented timelines (the scenario itself runs on a
namespaced cluster: ``tests/hosts/test_bench_failover.py``)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from benchmarks.failover import figures
from benchmarks.failover.participant import Event


def test_stop_assigning_is_the_first_answer_after_the_last_dead_one() -> None:
    probes = [(9.0, "r1"), (10.1, "r1"), (10.2, ""), (10.3, "r1"), (10.4, ""), (10.5, "r2"),
              (10.6, "r2")]
    assert math.isclose(figures.stop_assigning(probes, "r1", 10.0) or 0, 0.5)
    assert figures.stop_assigning([*probes, (11.0, "r1")], "r1", 10.0) is None
    assert math.isclose(figures.stop_assigning([(10.2, "r2")], "r1", 10.0) or 0, 0.2)
    assert figures.stop_assigning([(10.2, "")], "r1", 10.0) is None


def test_back_in_needs_another_router_after_the_kill() -> None:
    events = [Event(1.0, "in", "r1"), Event(5.0, "out", "r1"), Event(6.0, "in", "r1"),
              Event(7.0, "in", "r2")]
    assert figures.back_in(events, 5.0, "r1") == 7.0
    assert figures.back_in(events, 7.5, "r1") is None


@given(st.lists(st.floats(0, 100), min_size=1, max_size=50))
def test_percentile_is_a_member_and_p100_the_maximum(values: list[float]) -> None:
    assert figures.percentile(values, 99) in values
    assert figures.percentile(values, 100) == max(values)
    assert figures.percentile(values, 1) == min(values) or len(values) > 100


def test_residency_duplicates_and_verdicts() -> None:
    events = [Event(1, "assigned", "r1", "EEA"), Event(2, "in", "r9", "US"),
              Event(3, "error", "", "")]
    assert figures.residency_violations(events, {"EEA"}) == 1
    assert figures.duplicate_placements({"a": ["r1", "r1", ""], "b": ["r1", "r2"]}) == 1
    verdicts = figures.verdicts({"stop_assigning_s": 9.6, "rejoin_p99_s": 4.0,
                                 "failed_joins": 0, "duplicate_placements": None})
    assert verdicts == {"stop_assigning_s": "MISSED", "rejoin_p99_s": "met",
                        "failed_joins": "met", "duplicate_placements": "not measured",
                        "residency_violations": "not measured",
                        "chat_wrong_room": "not measured"}
