"""Fixture databases for the geo tests, written at test time by :mod:`tests.geo.mmdb_writer`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.geo.mmdb_writer import write_mmdb

#: Flat (ip-location-db style) records, including the update probes 193.0.0.1 and 8.8.8.8.
FLAT_NETWORKS: list[tuple[str, Any]] = [
    ("193.0.0.0/21", {"country_code": "NL"}),
    ("8.8.8.0/24", {"country_code": "US"}),
    ("81.2.69.0/24", {"country_code": "GB"}),
    ("5.9.0.0/16", {"country_code": "DE"}),
    ("2001:67c::/32", {"country_code": "NL"}),
    ("2a01:4f8::/32", {"country_code": "DE"}),
    ("1.0.0.0/24", {"country_code": "EU"}),  # a pseudo-code: no country
    ("1.0.1.0/24", {"country_code": "zz"}),
]


def geoip2_record(code: str) -> dict[str, Any]:
    return {
        "continent": {"code": "EU", "geoname_id": 6255148, "names": {"en": "Europe"}},
        "country": {"geoname_id": 1, "iso_code": code, "names": {"en": code}},
        "registered_country": {"geoname_id": 1, "iso_code": code, "names": {"en": code}},
    }


MakeDb = Callable[..., Path]


@pytest.fixture
def make_db(tmp_path: Path) -> MakeDb:
    """``make_db(name, networks=FLAT_NETWORKS, **write_mmdb_options) -> path``."""

    def make(name: str = "test.mmdb", networks: Any = None, **options: Any) -> Path:
        return write_mmdb(
            tmp_path / name, FLAT_NETWORKS if networks is None else networks, **options
        )

    return make


@pytest.fixture
def flat_db(make_db: MakeDb) -> Path:
    return make_db("flat.mmdb")
