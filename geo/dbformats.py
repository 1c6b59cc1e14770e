"""Opening a country database in the MaxMind DB format, whichever vendor wrote it.

Two families exist in the wild:

- MaxMind's GeoIP2/GeoLite2 Country, City and Enterprise databases (and GeoIP2-compatible ones
  such as DB-IP's): nested records, ``{"country": {"iso_code": "DE"}, ...}``. They are read
  through ``geoip2``, MaxMind's own reader, which also refuses a database of the wrong type.
- Other country databases in the same container format, such as ip-location-db's (the embedded
  default), whose records are flat: ``{"country_code": "DE"}``. ``geoip2`` refuses those, so
  they are read through ``maxminddb`` directly.

Which one a file is comes from its metadata ``database_type`` and, because vendors name types
freely, from the shape of its first record. Every reader answers one question only: the ISO
3166-1 alpha-2 code of an address, or None.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import geoip2.database
import geoip2.errors
import maxminddb

from geo.residency import normalize_country

#: geoip2 reader methods by the word in ``database_type`` that selects them, most specific first.
GEOIP2_METHODS: tuple[tuple[str, str], ...] = (
    ("Enterprise", "enterprise"),
    ("City", "city"),
    ("Country", "country"),
)


class DatabaseFormatError(ValueError):
    """A file that is not a usable country database (corrupt, empty, or another kind)."""


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    """What was opened, for logs and ``regio geo lookup``."""

    path: str
    database_type: str
    format: str
    """``geoip2`` (nested MaxMind records), ``country_code`` (flat) or ``nested`` (GeoIP2-shaped
    records in a database ``geoip2`` does not accept by type)."""
    build_epoch: int
    ip_version: int


class CountryReader:
    """One opened database: ``country(address_literal)`` never raises for a well-formed
    literal's lookup failure; callers still guard against corrupt-data errors."""

    def __init__(
        self, info: DatabaseInfo, lookup: Callable[[str], object], close: Callable[[], None]
    ) -> None:
        self.info = info
        self._lookup = lookup
        self._close = close

    def country(self, address: str) -> str | None:
        """The country of a public address literal, or None if the database has none."""
        return normalize_country(self._lookup(address))

    def close(self) -> None:
        self._close()


def open_country_database(
    path: str | os.PathLike[str], *, name: str | None = None
) -> CountryReader:
    """Open ``path`` as a country database; :class:`DatabaseFormatError` if it is not one.

    ``name`` is the path to report (the operator's file when ``path`` is a private copy).
    """
    path = os.fspath(path)
    shown = name or path
    try:
        raw = maxminddb.open_database(path, maxminddb.MODE_AUTO)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise DatabaseFormatError(f"cannot open {shown}: {_describe(exc)}") from exc
    try:
        meta = raw.metadata()
        first = _first_record(raw)
    except Exception as exc:
        raw.close()
        raise DatabaseFormatError(f"cannot read {shown}: {_describe(exc)}") from exc
    db_type = str(meta.database_type)

    def info(fmt: str) -> DatabaseInfo:
        return DatabaseInfo(shown, db_type, fmt, int(meta.build_epoch), int(meta.ip_version))

    if isinstance(first, dict) and "country_code" in first:
        return CountryReader(info("country_code"), _flat_lookup(raw), raw.close)
    # GeoIP2-shaped: nested ``country``; a first record of an anonymous network may carry only
    # ``registered_country`` or ``continent`` and still belong to such a database.
    if not (isinstance(first, dict) and _is_geoip2_shaped(first)):
        raw.close()
        raise DatabaseFormatError(
            f"{shown}: database type {db_type!r} has no country records "
            "(expected country_code or country.iso_code)"
        )
    for word, method in GEOIP2_METHODS:
        if word in db_type:
            raw.close()
            return _open_geoip2(path, info("geoip2"), method)
    return CountryReader(info("nested"), _nested_lookup(raw), raw.close)


def _is_geoip2_shaped(record: dict[str, Any]) -> bool:
    return any(key in record for key in ("country", "registered_country", "continent"))


def _first_record(raw: Any) -> object:
    """The first record in the tree: enough to tell the record shape of any vendor's file."""
    for _network, record in raw:
        return record
    raise DatabaseFormatError("the database holds no records")


def _flat_lookup(raw: Any) -> Callable[[str], object]:
    get = raw.get

    def lookup(address: str) -> object:
        record = get(address)
        return record.get("country_code") if isinstance(record, dict) else None

    return lookup


def _nested_lookup(raw: Any) -> Callable[[str], object]:
    get = raw.get

    def lookup(address: str) -> object:
        record = get(address)
        if isinstance(record, dict):
            country = record.get("country")
            if isinstance(country, dict):
                return country.get("iso_code")
        return None

    return lookup


def _open_geoip2(path: str, info: DatabaseInfo, method_name: str) -> CountryReader:
    try:
        reader = geoip2.database.Reader(path, mode=maxminddb.MODE_AUTO)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        raise DatabaseFormatError(f"cannot open {info.path}: {_describe(exc)}") from exc
    method = getattr(reader, method_name)

    def lookup(address: str) -> object:
        try:
            model = method(address)
        except geoip2.errors.AddressNotFoundError:
            return None
        # Only the geolocated country counts: registered_country says where a block was
        # registered, not where the client is, and guessing would fail open.
        return model.country.iso_code

    return CountryReader(info, lookup, reader.close)


def _describe(exc: BaseException) -> str:
    """An error's text without any address in it (lookup errors quote the address)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__ if isinstance(exc, geoip2.errors.GeoIP2Error) else str(exc)
