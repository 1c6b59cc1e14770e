"""The GeoIP reader: real databases, both record families, reload on change, failing closed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo.dbformats import DatabaseFormatError, open_country_database
from geo.geoip import DEFAULT_DATABASE, GeoIP, Outcome
from tests.geo.conftest import MakeDb, geoip2_record


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def embedded() -> GeoIP:
    return GeoIP(DEFAULT_DATABASE)


@pytest.mark.parametrize(
    ("address", "country"),
    [
        ("193.0.0.1", "NL"),  # RIPE NCC, 193.0.0.0/21, Amsterdam
        ("2001:67c:2e8::1", "NL"),  # RIPE NCC
        ("8.8.8.8", "US"),  # Google Public DNS
        ("::ffff:193.0.0.1", "NL"),
        ("2002:c100:1::1", "NL"),  # 6to4 of 193.0.0.1
        ("64:ff9b::193.0.0.1", "NL"),
        ("64:ff9b:1::c100:1", "NL"),
    ],
)
def test_embedded_database_well_known(embedded: GeoIP, address: str, country: str) -> None:
    result = embedded.lookup(address)
    assert (result.country, result.outcome) == (country, Outcome.FOUND)


def test_embedded_database_metadata(embedded: GeoIP) -> None:
    info = embedded.info
    assert info is not None
    assert info.format == "country_code"
    assert info.ip_version == 6
    assert DEFAULT_DATABASE.stat().st_size < 20 * 1024 * 1024


@pytest.mark.parametrize(
    ("address", "outcome"),
    [
        ("10.0.0.1", Outcome.SPECIAL),
        ("::ffff:192.168.0.1", Outcome.SPECIAL),
        ("2002:0a00:0001::1", Outcome.SPECIAL),
        ("64:ff9b::127.0.0.1", Outcome.SPECIAL),
        ("100.64.1.1", Outcome.SPECIAL),
        ("2001:db8::1", Outcome.SPECIAL),
        ("not an address", Outcome.INVALID),
        ("", Outcome.INVALID),
    ],
)
def test_unlocatable_addresses(embedded: GeoIP, address: str, outcome: Outcome) -> None:
    before = embedded.stats[outcome.value]
    result = embedded.lookup(address)
    assert result.country is None
    assert result.outcome is outcome
    assert embedded.stats[outcome.value] == before + 1


def test_flat_fixture(flat_db: Path) -> None:
    geo = GeoIP(flat_db)
    assert geo.info is not None and geo.info.format == "country_code"
    assert geo.country("193.0.0.7") == "NL"
    assert geo.country("2a01:4f8::1") == "DE"
    assert geo.lookup("9.9.9.9").outcome is Outcome.NOT_FOUND
    # Pseudo-codes are no country.
    assert geo.lookup("1.0.0.1").outcome is Outcome.NOT_FOUND
    assert geo.lookup("1.0.1.1").outcome is Outcome.NOT_FOUND


@pytest.mark.parametrize("db_type", ["GeoLite2-Country", "GeoIP2-City", "GeoIP2-Enterprise"])
def test_geoip2_databases_through_geoip2(make_db: MakeDb, db_type: str) -> None:
    networks = [("81.2.69.0/24", geoip2_record("GB")), ("2a02:c7f::/32", geoip2_record("GB"))]
    networks.append(("193.0.0.0/21", {"registered_country": {"iso_code": "NL"}}))
    path = make_db(networks=networks, database_type=db_type)
    geo = GeoIP(path)
    assert geo.info is not None and geo.info.format == "geoip2"
    assert geo.country("81.2.69.142") == "GB"
    assert geo.country("2a02:c7f::1") == "GB"
    # Only the geolocated country counts, never registered_country.
    assert geo.lookup("193.0.0.1").outcome is Outcome.NOT_FOUND
    assert geo.lookup("8.8.8.8").outcome is Outcome.NOT_FOUND


def test_nested_records_of_another_vendor(make_db: MakeDb) -> None:
    path = make_db(networks=[("5.9.0.0/16", geoip2_record("DE"))], database_type="acme-geo")
    reader = open_country_database(path)
    assert reader.info.format == "nested"
    assert reader.country("5.9.1.1") == "DE"


def test_non_country_database_refused(make_db: MakeDb) -> None:
    path = make_db(networks=[("5.9.0.0/16", {"asn": 24940})], database_type="GeoLite2-ASN")
    with pytest.raises(DatabaseFormatError):
        open_country_database(path)
    geo = GeoIP(path)
    assert geo.info is None
    assert geo.lookup("5.9.1.1").outcome is Outcome.NO_DATABASE


def test_missing_database_fails_closed(tmp_path: Path) -> None:
    geo = GeoIP(tmp_path / "absent.mmdb")
    assert geo.info is None
    result = geo.lookup("8.8.8.8")
    assert (result.country, result.outcome) == (None, Outcome.NO_DATABASE)
    assert geo.stats["no_database"] == 1
    assert geo.stats["reload_failures"] == 1


def test_corrupt_database_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.mmdb"
    path.write_bytes(os.urandom(4096))
    geo = GeoIP(path)
    assert geo.lookup("8.8.8.8").outcome is Outcome.NO_DATABASE
    truncated = tmp_path / "truncated.mmdb"
    truncated.write_bytes(DEFAULT_DATABASE.read_bytes()[:100_000])
    assert GeoIP(truncated).lookup("8.8.8.8").outcome is Outcome.NO_DATABASE


def test_ipv6_in_ipv4_database_is_an_error_not_an_exception(make_db: MakeDb) -> None:
    path = make_db(networks=[("8.8.8.0/24", {"country_code": "US"})], ip_version=4)
    geo = GeoIP(path)
    assert geo.country("8.8.8.8") == "US"
    result = geo.lookup("2a00:1450::1")
    assert (result.country, result.outcome) == (None, Outcome.ERROR)
    assert geo.stats["error"] == 1


def _replace(path: Path, new: Path) -> None:
    os.replace(new, path)


def test_reload_on_change(make_db: MakeDb, tmp_path: Path) -> None:
    clock = FakeClock()
    path = make_db("live.mmdb", networks=[("193.0.0.0/21", {"country_code": "NL"})])
    geo = GeoIP(path, check_interval=5.0, clock=clock)
    assert geo.country("193.0.0.1") == "NL"
    _replace(path, make_db("next.mmdb", networks=[("193.0.0.0/21", {"country_code": "DE"})]))
    clock.now += 1.0
    assert geo.country("193.0.0.1") == "NL"  # not checked again before the interval
    clock.now += 5.0
    assert geo.country("193.0.0.1") == "DE"
    assert geo.stats["reloads"] == 2


def test_bad_replacement_keeps_the_old_database(make_db: MakeDb, tmp_path: Path) -> None:
    clock = FakeClock()
    path = make_db("live.mmdb")
    geo = GeoIP(path, check_interval=1.0, clock=clock)
    assert geo.country("193.0.0.1") == "NL"
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"garbage" * 100)
    _replace(path, bad)
    clock.now += 2
    assert geo.country("193.0.0.1") == "NL"
    assert geo.stats["reload_failures"] == 1
    clock.now += 2
    geo.lookup("193.0.0.1")
    assert geo.stats["reload_failures"] == 1  # the same bad file is not re-read
    _replace(path, make_db("good.mmdb", networks=[("193.0.0.0/21", {"country_code": "FR"})]))
    clock.now += 2
    assert geo.country("193.0.0.1") == "FR"


def test_database_appearing_later_is_loaded(make_db: MakeDb, tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "later.mmdb"
    geo = GeoIP(path, check_interval=1.0, clock=clock)
    assert geo.lookup("193.0.0.1").outcome is Outcome.NO_DATABASE
    _replace(path, make_db("src.mmdb"))
    clock.now += 2
    assert geo.country("193.0.0.1") == "NL"


def test_in_place_overwrite_cannot_break_lookups(make_db: MakeDb, tmp_path: Path) -> None:
    """The database is mapped from a private copy: scribbling over the file in place (not the
    recommended rename) changes nothing until the next reload check."""
    clock = FakeClock()
    path = make_db("live.mmdb")
    geo = GeoIP(path, check_interval=60.0, clock=clock)
    with open(path, "r+b") as handle:
        handle.truncate(10)
    assert geo.country("193.0.0.1") == "NL"


def test_lookup_logs_no_address(
    make_db: MakeDb, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="regio")
    geo = GeoIP(make_db(networks=[("8.8.8.0/24", {"country_code": "US"})], ip_version=4))
    geo.lookup("2a00:1450:4001:82a::200e")
    GeoIP(tmp_path / "missing.mmdb").lookup("81.2.69.142")
    assert caplog.records
    assert "2a00:1450" not in caplog.text
    assert "81.2.69" not in caplog.text


@given(st.text(max_size=50) | st.ip_addresses().map(str))
def test_lookup_never_raises(address: str) -> None:
    result = _SHARED.lookup(address)
    assert result.country is None or result.outcome is Outcome.FOUND


_SHARED = GeoIP(DEFAULT_DATABASE)
