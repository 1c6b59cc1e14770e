"""Path choice: residency of relays (property), cost, hysteresis, two disjoint paths."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from router.trunk.paths import LinkState, Path, PathChooser, PathConfig, allowed_relays

JURISDICTIONS = ["EEA", "US", "UK", "CH"]


@given(st.dictionaries(st.from_regex(r"r[0-9]{1,2}", fullmatch=True),
                       st.sampled_from(JURISDICTIONS), min_size=2, max_size=12),
       st.booleans(), st.data())
def test_relays_stay_in_the_jurisdictions_of_the_ends(juris: dict[str, str], strict: bool,
                                                      data: st.DataObject) -> None:
    nodes = sorted(juris)
    src = data.draw(st.sampled_from(nodes))
    dst = data.draw(st.sampled_from([n for n in nodes if n != src] or nodes))
    links = {(a, b): LinkState(data.draw(st.floats(0, 0.5)), data.draw(st.floats(1, 300)))
             for a in nodes for b in nodes if a != b}
    relays = allowed_relays(src, dst, [*nodes, "unknown-node"], juris, strict)
    for relay in relays:
        assert juris[relay] in (juris[src], juris[dst])
        if strict:
            assert juris[relay] == "EEA"
    chooser = PathChooser(src, dst, PathConfig(hold=0.0))
    for t in range(3):
        choice = chooser.update(links, relays, float(t))
        for path in (choice.primary, choice.secondary):
            if path is not None and path.relay is not None:
                assert path.relay in relays


def links_with(direct_loss: float) -> dict[tuple[str, str], LinkState]:
    return {("a", "b"): LinkState(direct_loss, 40.0), ("a", "r"): LinkState(0.0, 20.0),
            ("r", "b"): LinkState(0.0, 24.0), ("a", "s"): LinkState(0.0, 30.0),
            ("s", "b"): LinkState(0.0, 30.0)}


def test_loss_moves_the_flow_to_a_relay_after_the_hold_and_back() -> None:
    chooser = PathChooser("a", "b", PathConfig(hold=1.0))
    assert chooser.update(links_with(0.0), ["r", "s"], 0.0).primary == Path(("a", "b"))
    lossy = links_with(0.10)
    choice = chooser.update(lossy, ["r", "s"], 1.0)
    # above 2 % loss the second, disjoint path starts at once; the switch waits for the hold
    assert choice.primary == Path(("a", "b")) and choice.secondary == Path(("a", "r", "b"))
    assert chooser.update(lossy, ["r", "s"], 1.5).primary == Path(("a", "b"))
    choice = chooser.update(lossy, ["r", "s"], 2.1)
    assert choice.primary == Path(("a", "r", "b")) and chooser.switches == 1
    assert choice.secondary is None  # the relay path is clean
    # the direct link recovers but is only 2 ms cheaper: no flapping back
    assert chooser.update(links_with(0.0), ["r", "s"], 3.0).primary == Path(("a", "r", "b"))
    assert chooser.update(links_with(0.0), ["r", "s"], 3.5).primary == Path(("a", "r", "b"))


def test_small_gains_do_not_switch() -> None:
    chooser = PathChooser("a", "b", PathConfig(hold=0.0))
    links = links_with(0.0) | {("a", "b"): LinkState(0.0, 46.0)}  # relay saves 1 ms
    for t in range(5):
        assert chooser.update(links, ["r"], float(t)).primary == Path(("a", "b"))


def test_a_relay_that_is_no_longer_allowed_is_left_at_once() -> None:
    chooser = PathChooser("a", "b", PathConfig(hold=0.0))
    chooser.update(links_with(0.3), ["r"], 0.0)
    assert chooser.update(links_with(0.3), ["r"], 0.1).primary.relay == "r"
    assert chooser.update(links_with(0.3), [], 0.2).primary == Path(("a", "b"))
