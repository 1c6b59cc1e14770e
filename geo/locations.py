"""Where a country is, and how far apart two places are.

A GeoIP country database names a country, not a point, so "nearest region" means nearest to a
representative point of the client's country (``data/country_locations.json``, source and
licence in its header and in NOTICE). Distances are great-circle distances on a spherical
Earth: good to a fraction of a percent, far finer than a country-level position.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

LOCATIONS_FILE = Path(__file__).parent / "data" / "country_locations.json"

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG)."""

LatLon = tuple[float, float]


def haversine_km(a: LatLon, b: LatLon) -> float:
    """Great-circle distance between two (latitude, longitude) points in degrees."""
    lat1, lon1 = math.radians(a[0]), math.radians(a[1])
    lat2, lon2 = math.radians(b[0]), math.radians(b[1])
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@functools.cache
def country_locations() -> Mapping[str, LatLon]:
    """ISO 3166-1 alpha-2 code -> (latitude, longitude), for every assigned code."""
    with open(LOCATIONS_FILE, encoding="utf-8") as handle:
        raw = json.load(handle)
    return MappingProxyType(
        {code: (float(lat), float(lon)) for code, (lat, lon) in raw["locations"].items()}
    )


def country_location(country: str | None) -> LatLon | None:
    """The representative point of a country, or None (unknown country)."""
    if country is None:
        return None
    return country_locations().get(country.upper())
