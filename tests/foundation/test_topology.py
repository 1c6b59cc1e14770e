from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.jurisdictions import EEA_COUNTRIES, assigned_country_codes
from control.topology import Topology, TopologyError, load_topology, parse_topology

EXAMPLE = """\
[jurisdictions.EEA]
restricted = true          # its clients may only use nodes of this jurisdiction

[regions.eu-central]
jurisdiction = "EEA"
location = [50.11, 8.68]
routers = 1
turns = 1

[regions.us-east]
jurisdiction = "US"
location = [39.04, -77.49]
routers = 2
turns = 0
"""


def test_issue_example_parses() -> None:
    topology = parse_topology(EXAMPLE, "t.toml")
    assert topology.jurisdictions["EEA"].restricted
    assert topology.jurisdictions["EEA"].countries == EEA_COUNTRIES
    assert topology.jurisdictions["US"].countries == {"US"}
    assert not topology.jurisdictions["US"].restricted
    assert topology.regions["us-east"].routers == 2
    assert topology.regions["us-east"].turns == 0
    assert topology.fail_closed_jurisdiction == "EEA"


def test_eea_exists_even_without_eea_regions() -> None:
    topology = parse_topology('[regions.us]\njurisdiction = "US"\nlocation = [1, 2]\n')
    assert topology.jurisdictions["EEA"].restricted
    assert topology.jurisdiction_of_country("DE") == "EEA"


@pytest.mark.parametrize(
    ("text", "line", "field", "reason"),
    [
        ("[regions.a]\njurisdiction = 'EEA'\nlocation = [91, 0]\n", 3, "regions.a.location",
         "latitude 91.0 is outside -90..90"),
        ("[regions.a]\njurisdiction = 'EEA'\nlocation = [1, 0]\nrouter = 1\n", 4,
         "regions.a.router", "unknown field"),
        ("[regions.a]\nlocation = [1, 0]\n", 1, "regions.a.jurisdiction", "missing"),
        ("[regions.a]\njurisdiction = 'EEA'\nlocation = [1, 0]\nturns = -1\n", 4,
         "regions.a.turns", "-1 is outside 0..64"),
        ("[regions.a]\njurisdiction = 'EEA'\nlocation = [1, 0]\nturns = 'two'\n", 4,
         "regions.a.turns", "must be a whole number, not a string"),
        ("[regions.a]\njurisdiction = 'EEA'\nlocation = 'here'\n", 3, "regions.a.location",
         "must be [latitude, longitude]"),
        ("[jurisdictions.X]\ncountries = ['DE']\n\n[regions.a]\njurisdiction = 'X'\n"
         "location = [1, 0]\n", 2, "jurisdictions.X.countries", "DE already belongs to"),
        ("[jurisdictions.X]\ncountries = ['XX']\n[regions.a]\njurisdiction = 'X'\n"
         "location = [1, 0]\n", 2, "jurisdictions.X.countries", "XX is not an assigned"),
        ("[jurisdictions.X]\nrestricted = 'yes'\n[regions.a]\njurisdiction = 'X'\n"
         "location = [1, 0]\n", 2, "jurisdictions.X.restricted", "must be true or false"),
        ("[regions.a]\njurisdiction = 'EEA'\nlocation = [1, 0\n", 3, "(syntax)", ""),
        ("regions = 3\n", 1, "regions", "must be a table"),
        ("[regions.'bad name']\njurisdiction = 'EEA'\nlocation = [1, 0]\n", 1,
         "regions.bad name", "invalid name"),
        ("[jurisdictions.EEA]\n", None, "regions", "missing table"),
    ],
)
def test_malformed_topology_names_file_line_and_field(
    text: str, line: int | None, field: str, reason: str
) -> None:
    with pytest.raises(TopologyError) as excinfo:
        parse_topology(text, "cluster.toml")
    error = excinfo.value
    assert error.source == "cluster.toml"
    assert error.line == line
    assert error.field_path == field
    assert reason in error.reason
    prefix = f"cluster.toml:{line}" if line else "cluster.toml"
    assert str(error).startswith(f"{prefix}: {field}: ")


def test_load_topology_reports_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read"):
        load_topology(tmp_path / "missing.toml")


def test_shipped_local_topology_is_valid() -> None:
    path = Path(__file__).resolve().parents[2] / "infra" / "local" / "topology.toml"
    topology = load_topology(path)
    eea_regions = [r for r in topology.regions.values() if r.jurisdiction == "EEA"]
    assert len(eea_regions) >= 2
    assert any(r.jurisdiction == "US" for r in topology.regions.values())


# --- residency rules (hypothesis) ---------------------------------------------------------

TOPOLOGY = parse_topology(EXAMPLE)
ASSIGNED = sorted(assigned_country_codes())


@given(st.sampled_from(sorted(EEA_COUNTRIES)))
def test_every_eea_country_maps_to_the_eea(code: str) -> None:
    assert TOPOLOGY.jurisdiction_of_country(code) == "EEA"
    assert TOPOLOGY.jurisdiction_of_country(code.lower()) == "EEA"


@given(st.one_of(st.none(), st.text(max_size=5)))
def test_anything_not_a_country_fails_closed(value: str | None) -> None:
    if value is not None and value.upper() in assigned_country_codes():
        return
    assert TOPOLOGY.jurisdiction_of_country(value) == "EEA"


@given(st.sampled_from(ASSIGNED))
def test_real_countries_get_their_jurisdiction_or_none(code: str) -> None:
    result = TOPOLOGY.jurisdiction_of_country(code)
    if code in EEA_COUNTRIES:
        assert result == "EEA"
    elif code == "US":
        assert result == "US"
    else:
        assert result is None  # no home jurisdiction: unrestricted


region_names = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)


@st.composite
def topologies(draw: st.DrawFn) -> str:
    names = draw(st.lists(region_names, min_size=1, max_size=5, unique=True))
    lines = []
    for name in names:
        jurisdiction = draw(st.sampled_from(["EEA", "US", "JP", "Other"]))
        lat = draw(st.floats(-90, 90, allow_nan=False))
        lon = draw(st.floats(-180, 180, allow_nan=False))
        routers = draw(st.integers(0, 64))
        lines += [
            f"[regions.{name}]",
            f'jurisdiction = "{jurisdiction}"',
            f"location = [{lat!r}, {lon!r}]",
            f"routers = {routers}",
        ]
    return "\n".join(lines) + "\n"


@given(topologies())
def test_topology_json_round_trip(text: str) -> None:
    topology = parse_topology(text)
    again = Topology.from_json(json.loads(json.dumps(topology.to_json())))
    assert dict(again.regions) == dict(topology.regions)
    assert dict(again.jurisdictions) == dict(topology.jurisdictions)
    assert again.fail_closed_jurisdiction == topology.fail_closed_jurisdiction == "EEA"
    for region in topology.regions.values():
        assert region.jurisdiction in topology.jurisdictions
