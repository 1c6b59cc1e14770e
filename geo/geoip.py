"""Address -> country, failing closed, with the database reloaded when it changes on disk.

:class:`GeoIP` is what the front door holds. Its contract:

- :meth:`GeoIP.lookup` never raises. Anything that stops it from naming a country (a private or
  reserved address, an unparsable one, no database, a corrupt one, an address the database does
  not know) gives ``country=None`` with the reason in ``outcome``, counted in :attr:`GeoIP.stats`;
  the caller then treats the client as restricted (ARCHITECTURE.md §4).
- The file is checked at most every ``check_interval`` seconds (device, inode, size and mtime),
  and a changed file is opened *before* it replaces the current reader: lookups keep being
  answered by the old database until the new one is ready, and a new file that does not open
  is logged and counted while the old database stays in service.
- The database is memory-mapped from a private copy, so an operator who overwrites the file in
  place (rather than renaming a new one over it, as ``regio geo update`` does) cannot pull pages
  out from under a running lookup.
- A reload (copy and open) runs inside the lookup that notices the change: a few
  milliseconds for the embedded database. A server that must never pause a request for it can
  pass ``check_interval=math.inf`` and call :meth:`GeoIP.check_for_update` from a worker
  thread on its own schedule; the swap is one attribute assignment either way.
- No raw address is logged; errors are described by type, because the readers' messages quote
  the address.
"""

from __future__ import annotations

import contextlib
import enum
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from control.logs import get_logger
from geo.addresses import AddressKind, IPAddress, classify_text
from geo.dbformats import CountryReader, DatabaseFormatError, DatabaseInfo, open_country_database

log = get_logger("geo.geoip")

#: The embedded default: ip-location-db's geo-whois-asn-country (IPv4+IPv6); see NOTICE.
DEFAULT_DATABASE = Path(__file__).parent / "data" / "geo-whois-asn-country.mmdb"

#: How often the database file is checked for changes, in seconds.
DEFAULT_CHECK_INTERVAL = 5.0


class Outcome(enum.StrEnum):
    """Why a lookup gave the country it gave. Only ``FOUND`` has a country."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    """A public address the database has no (ISO) country for."""
    SPECIAL = "special"
    """Private, loopback, reserved, ...: never looked up (see :mod:`geo.addresses`)."""
    INVALID = "invalid"
    """Not an IP address at all."""
    NO_DATABASE = "no_database"
    ERROR = "error"
    """The database failed on this lookup (corrupt data, IPv6 asked of an IPv4-only file)."""


@dataclass(frozen=True, slots=True)
class GeoResult:
    country: str | None
    """An assigned ISO 3166-1 alpha-2 code, or None (the caller fails closed)."""
    outcome: Outcome
    kind: AddressKind | None = None
    """The address kind; None for an unparsable address."""


FileSignature = tuple[int, int, int, int]


def file_signature(path: str | os.PathLike[str]) -> FileSignature | None:
    """(device, inode, size, mtime_ns), or None if the file cannot be seen."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class GeoIP:
    """A reloading, fail-closed country lookup over one database file."""

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_DATABASE,
        *,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        private_copy: bool = True,
    ) -> None:
        self.path = Path(path)
        self.check_interval = check_interval
        self.stats: Counter[str] = Counter()
        """Lookups by :class:`Outcome`, plus ``reloads`` and ``reload_failures``."""
        self._clock = clock
        self._private_copy = private_copy
        self._reader: CountryReader | None = None
        self._signature: FileSignature | None = None
        self._tried: FileSignature | None = None
        self._next_check = 0.0
        self._logged_error = False
        self.last_error: str | None = None
        """Why the latest load attempt failed (no address in it), or None."""
        self.reload()

    @property
    def info(self) -> DatabaseInfo | None:
        """The database in service, or None."""
        reader = self._reader
        return reader.info if reader is not None else None

    def lookup(self, address: str | IPAddress) -> GeoResult:
        """The country of ``address``; never raises (see the module docstring)."""
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self.check_interval
            self.check_for_update()
        text = address if isinstance(address, str) else str(address)
        query, kind = classify_text(text)
        if kind is None:
            return self._count(GeoResult(None, Outcome.INVALID, None))
        if query is None:
            return self._count(GeoResult(None, Outcome.SPECIAL, kind))
        reader = self._reader
        if reader is None:
            return self._count(GeoResult(None, Outcome.NO_DATABASE, kind))
        try:
            country = reader.country(query)
        except Exception as exc:  # a lookup must never escape; the caller fails closed
            if not self._logged_error:
                self._logged_error = True
                log.warning("GeoIP lookup failed (%s); failing closed", type(exc).__name__)
            return self._count(GeoResult(None, Outcome.ERROR, kind))
        if country is None:
            return self._count(GeoResult(None, Outcome.NOT_FOUND, kind))
        return self._count(GeoResult(country, Outcome.FOUND, kind))

    def country(self, address: str | IPAddress) -> str | None:
        return self.lookup(address).country

    def check_for_update(self) -> bool:
        """Reload if the file changed since the last attempt; True if a new database loaded."""
        signature = file_signature(self.path)
        if signature is None or signature == self._signature or signature == self._tried:
            return False
        return self.reload()

    def reload(self) -> bool:
        """Open the file now and, if it is a usable database, put it in service."""
        signature = file_signature(self.path)
        self._tried = signature
        try:
            reader = self._open()
        except DatabaseFormatError as exc:
            self.stats["reload_failures"] += 1
            self.last_error = str(exc)
            keeping = "keeping the previous database" if self._reader else "failing closed"
            log.warning("GeoIP database not loaded: %s; %s", exc, keeping)
            return False
        old, self._reader = self._reader, reader
        self._signature = signature
        self._logged_error = False
        self.last_error = None
        self.stats["reloads"] += 1
        log.info(
            "GeoIP database %s loaded (type %s, %s records, built %s)",
            self.path,
            reader.info.database_type,
            reader.info.format,
            reader.info.build_epoch,
        )
        if old is not None:
            # Not closed: a lookup on another thread may still hold it. Dropping the last
            # reference unmaps it once that lookup is done.
            del old
        return True

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _open(self) -> CountryReader:
        if not self._private_copy:
            return open_country_database(self.path)
        fd, copy = tempfile.mkstemp(prefix="regio-geoip-", suffix=".mmdb")
        try:
            with os.fdopen(fd, "wb") as target, open(self.path, "rb") as source:
                shutil.copyfileobj(source, target, 1 << 20)
            return open_country_database(copy, name=str(self.path))
        except OSError as exc:
            raise DatabaseFormatError(f"cannot read {self.path}: {exc.strerror}") from exc
        finally:
            # The mapping stays valid after the name is gone; nothing is left on disk.
            with contextlib.suppress(OSError):
                os.unlink(copy)

    def _count(self, result: GeoResult) -> GeoResult:
        self.stats[result.outcome.value] += 1
        return result
