"""The country-location table and great-circle distance."""

from __future__ import annotations

import json

import pytest

from control.jurisdictions import EEA_COUNTRIES, assigned_country_codes
from geo.locations import LOCATIONS_FILE, country_location, country_locations, haversine_km


def test_every_assigned_code_has_a_location() -> None:
    table = country_locations()
    assert set(table) >= assigned_country_codes()
    assert EEA_COUNTRIES <= set(table)


def test_locations_are_on_earth() -> None:
    for code, (lat, lon) in country_locations().items():
        assert -90 <= lat <= 90, code
        assert -180 <= lon <= 180, code


def test_source_is_recorded() -> None:
    raw = json.loads(LOCATIONS_FILE.read_text(encoding="utf-8"))
    assert "world-countries" in raw["_source"]
    assert "ODbL" in raw["_license"]


@pytest.mark.parametrize(
    ("code", "near"),
    [("DE", (51, 10)), ("FR", (46, 2)), ("US", (38, -97)), ("RE", (-21, 55.5)), ("JP", (36, 138))],
)
def test_plausible_points(code: str, near: tuple[float, float]) -> None:
    location = country_location(code)
    assert location is not None
    assert haversine_km(location, near) < 300


def test_unknown_country_has_no_location() -> None:
    assert country_location(None) is None
    assert country_location("ZZ") is None
    assert country_location("de") == country_location("DE")


def test_haversine() -> None:
    paris, london = (48.8566, 2.3522), (51.5074, -0.1278)
    assert haversine_km(paris, london) == pytest.approx(343.5, abs=2)
    assert haversine_km(paris, paris) == 0
    assert haversine_km((0, 0), (0, 180)) == pytest.approx(20015, rel=1e-3)
    assert haversine_km((90, 0), (-90, 0)) == pytest.approx(20015, rel=1e-3)
