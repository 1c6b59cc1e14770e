"""The cluster topology: jurisdictions, regions and how many nodes a local cluster starts.

Operators write it in TOML; ``regio cluster init`` stores it in etcd as JSON. A mistake in the
file must be found before anything is written, and reported with the file, the line and the
field, because a wrong jurisdiction is a residency breach rather than a typo.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from control.jurisdictions import (
    BUILTIN_JURISDICTIONS,
    DEFAULT_FAIL_CLOSED,
    assigned_country_codes,
)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
MAX_NODES_PER_KIND = 64


class TopologyError(ValueError):
    """A topology that cannot be used; the message names the source, line and field."""

    def __init__(self, source: str, line: int | None, field_path: str, message: str) -> None:
        self.source = source
        self.line = line
        self.field_path = field_path
        self.reason = message
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {field_path}: {message}")


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    """A named set of countries whose clients share one residency rule."""

    name: str
    restricted: bool
    """Clients of a restricted jurisdiction may only ever be given nodes inside it."""
    countries: frozenset[str]
    """ISO 3166-1 alpha-2 codes, upper case."""


@dataclass(frozen=True, slots=True)
class Region:
    """A place where nodes run; it belongs to exactly one jurisdiction."""

    name: str
    jurisdiction: str
    location: tuple[float, float]
    """(latitude, longitude) in degrees, for great-circle distance to clients."""
    routers: int = 1
    """How many routers ``regio cluster up`` starts here."""
    turns: int = 1
    """How many TURN nodes ``regio cluster up`` starts here."""


@dataclass(frozen=True, slots=True)
class Topology:
    """Jurisdictions and regions, validated: every region's jurisdiction exists, no country is
    claimed twice."""

    jurisdictions: Mapping[str, Jurisdiction]
    regions: Mapping[str, Region]
    fail_closed_jurisdiction: str | None = field(default=None)
    """Where unknown or unlocatable clients belong; a restricted jurisdiction or None."""

    def jurisdiction_of_country(self, country: str | None) -> str | None:
        """The jurisdiction a country belongs to; unknown countries fail closed."""
        if country is not None:
            code = country.upper()
            for jurisdiction in self.jurisdictions.values():
                if code in jurisdiction.countries:
                    return jurisdiction.name
            if code in assigned_country_codes():
                # A real country in no declared jurisdiction has no home jurisdiction: it may
                # use any unrestricted node. ``None`` says exactly that.
                return None
        return self.fail_closed_jurisdiction

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "fail_closed_jurisdiction": self.fail_closed_jurisdiction,
            "jurisdictions": {
                j.name: {"restricted": j.restricted, "countries": sorted(j.countries)}
                for j in self.jurisdictions.values()
            },
            "regions": {
                r.name: {
                    "jurisdiction": r.jurisdiction,
                    "location": [r.location[0], r.location[1]],
                    "routers": r.routers,
                    "turns": r.turns,
                }
                for r in self.regions.values()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Topology:
        jurisdictions = {
            name: Jurisdiction(name, bool(j["restricted"]), frozenset(j["countries"]))
            for name, j in data["jurisdictions"].items()
        }
        regions = {
            name: Region(
                name,
                r["jurisdiction"],
                (float(r["location"][0]), float(r["location"][1])),
                int(r["routers"]),
                int(r["turns"]),
            )
            for name, r in data["regions"].items()
        }
        return cls(
            MappingProxyType(jurisdictions),
            MappingProxyType(regions),
            data.get("fail_closed_jurisdiction"),
        )


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TopologyError(str(path), None, "(file)", f"cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise TopologyError(str(path), None, "(file)", "not UTF-8 text") from exc
    return parse_topology(text, str(path))


def parse_topology(text: str, source: str = "<topology>") -> Topology:
    """Parse and validate topology TOML; errors name ``source``, the line and the field."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        if match:
            line: int | None = int(match.group(1))
        elif "end of document" in str(exc):
            line = max(1, len(text.splitlines()))
        else:
            line = None
        raise TopologyError(source, line, "(syntax)", str(exc)) from exc
    return _Validator(raw, source, _LineIndex(text)).topology()


class _LineIndex:
    """Maps dotted field paths to the line that defines them.

    tomllib keeps no positions, so we scan table headers and ``key =`` lines ourselves; good
    enough to point an operator at the right line of a hand-written file.
    """

    _HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
    _KEY = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[A-Za-z0-9_.-]+)\s*=")

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        table = ""
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                table = ".".join(_unquote(p) for p in _split_dotted(header.group(1)))
                self.lines.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key:
                name = ".".join(_unquote(p) for p in _split_dotted(key.group(1)))
                self.lines.setdefault(f"{table}.{name}" if table else name, number)

    def line_of(self, path: str) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rpartition(".")[0]
        return None


def _split_dotted(key: str) -> list[str]:
    return [part.strip() for part in re.findall(r"\"[^\"]*\"|'[^']*'|[^.]+", key)]


def _unquote(part: str) -> str:
    if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'":
        return part[1:-1]
    return part


class _Validator:
    def __init__(self, raw: dict[str, Any], source: str, index: _LineIndex) -> None:
        self.raw = raw
        self.source = source
        self.index = index
        self.declared: set[str] = set()

    def fail(self, path: str, message: str) -> TopologyError:
        return TopologyError(self.source, self.index.line_of(path), path, message)

    def topology(self) -> Topology:
        for key in self.raw:
            if key not in ("jurisdictions", "regions", "fail_closed_jurisdiction"):
                raise self.fail(key, "unknown top-level key (expected jurisdictions, regions)")
        declared = self._table("jurisdictions", required=False)
        regions_raw = self._table("regions", required=True)
        if not regions_raw:
            raise self.fail("regions", "at least one region is required")
        self.declared = set(declared)
        jurisdictions = {name: self._jurisdiction(name, value) for name, value in declared.items()}
        regions = {name: self._region(name, value) for name, value in regions_raw.items()}
        for region in regions.values():
            if region.jurisdiction not in jurisdictions:
                jurisdictions[region.jurisdiction] = _implicit_jurisdiction(region.jurisdiction)
        if DEFAULT_FAIL_CLOSED not in jurisdictions:
            # The EEA exists even in a topology without EEA regions: its clients must then get
            # a clear "no allowed node", not a node elsewhere.
            jurisdictions[DEFAULT_FAIL_CLOSED] = _implicit_jurisdiction(DEFAULT_FAIL_CLOSED)
        self._check_countries_disjoint(jurisdictions)
        fail_closed = self._fail_closed(jurisdictions)
        return Topology(MappingProxyType(jurisdictions), MappingProxyType(regions), fail_closed)

    def _table(self, path: str, *, required: bool) -> dict[str, Any]:
        value = self.raw.get(path)
        if value is None:
            if required:
                raise self.fail(path, "missing table")
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a table, not {_kind(value)}")
        return value

    def _name(self, path: str, name: str) -> None:
        if not NAME_RE.match(name):
            raise self.fail(path, f"invalid name {name!r} (1-32 of A-Z a-z 0-9 _ -)")

    def _jurisdiction(self, name: str, value: Any) -> Jurisdiction:
        path = f"jurisdictions.{name}"
        self._name(path, name)
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a table, not {_kind(value)}")
        for key in value:
            if key not in ("restricted", "countries"):
                raise self.fail(f"{path}.{key}", "unknown field (expected restricted, countries)")
        restricted = value.get("restricted", name == DEFAULT_FAIL_CLOSED)
        if not isinstance(restricted, bool):
            raise self.fail(f"{path}.restricted", f"must be true or false, not {_kind(restricted)}")
        if "countries" in value:
            countries = self._countries(f"{path}.countries", value["countries"])
        elif name in BUILTIN_JURISDICTIONS:
            countries = BUILTIN_JURISDICTIONS[name]
        else:
            countries = _implicit_jurisdiction(name).countries
        return Jurisdiction(name, restricted, countries)

    def _countries(self, path: str, value: Any) -> frozenset[str]:
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list of ISO 3166-1 alpha-2 codes, not {_kind(value)}")
        codes: set[str] = set()
        for item in value:
            if not isinstance(item, str) or not COUNTRY_RE.match(item):
                raise self.fail(path, f"{item!r} is not an upper-case ISO 3166-1 alpha-2 code")
            if item not in assigned_country_codes():
                raise self.fail(path, f"{item} is not an assigned ISO 3166-1 alpha-2 code")
            if item in codes:
                raise self.fail(path, f"{item} is listed twice")
            codes.add(item)
        return frozenset(codes)

    def _region(self, name: str, value: Any) -> Region:
        path = f"regions.{name}"
        self._name(path, name)
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a table, not {_kind(value)}")
        allowed = ("jurisdiction", "location", "routers", "turns")
        for key in value:
            if key not in allowed:
                raise self.fail(f"{path}.{key}", f"unknown field (expected {', '.join(allowed)})")
        jurisdiction = value.get("jurisdiction")
        if jurisdiction is None:
            raise self.fail(f"{path}.jurisdiction", "missing (every region needs a jurisdiction)")
        if not isinstance(jurisdiction, str):
            raise self.fail(f"{path}.jurisdiction", f"must be a string, not {_kind(jurisdiction)}")
        self._name(f"{path}.jurisdiction", jurisdiction)
        location = self._location(f"{path}.location", value.get("location"))
        routers = self._count(f"{path}.routers", value.get("routers", 1))
        turns = self._count(f"{path}.turns", value.get("turns", 1))
        return Region(name, jurisdiction, location, routers, turns)

    def _location(self, path: str, value: Any) -> tuple[float, float]:
        if value is None:
            raise self.fail(path, "missing (expected [latitude, longitude])")
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            raise self.fail(path, "must be [latitude, longitude] in degrees")
        latitude, longitude = float(value[0]), float(value[1])
        if not -90.0 <= latitude <= 90.0:
            raise self.fail(path, f"latitude {latitude} is outside -90..90")
        if not -180.0 <= longitude <= 180.0:
            raise self.fail(path, f"longitude {longitude} is outside -180..180")
        return (latitude, longitude)

    def _count(self, path: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(path, f"must be a whole number, not {_kind(value)}")
        if not 0 <= value <= MAX_NODES_PER_KIND:
            raise self.fail(path, f"{value} is outside 0..{MAX_NODES_PER_KIND}")
        return value

    def _check_countries_disjoint(self, jurisdictions: dict[str, Jurisdiction]) -> None:
        owner: dict[str, str] = {}
        # Implicit jurisdictions first, so a clash is blamed on the line the operator wrote.
        ordered = sorted(jurisdictions.values(), key=lambda j: j.name in self.declared)
        for jurisdiction in ordered:
            for code in sorted(jurisdiction.countries):
                if code in owner:
                    raise self.fail(
                        f"jurisdictions.{jurisdiction.name}.countries",
                        f"{code} already belongs to jurisdiction {owner[code]}",
                    )
                owner[code] = jurisdiction.name

    def _fail_closed(self, jurisdictions: dict[str, Jurisdiction]) -> str | None:
        explicit = self.raw.get("fail_closed_jurisdiction")
        restricted = sorted(j.name for j in jurisdictions.values() if j.restricted)
        if explicit is not None:
            if not isinstance(explicit, str) or explicit not in jurisdictions:
                raise self.fail("fail_closed_jurisdiction", f"unknown jurisdiction {explicit!r}")
            if not jurisdictions[explicit].restricted:
                raise self.fail("fail_closed_jurisdiction", f"{explicit} is not restricted")
            return explicit
        if DEFAULT_FAIL_CLOSED in restricted:
            return DEFAULT_FAIL_CLOSED
        if len(restricted) == 1:
            return restricted[0]
        if len(restricted) > 1:
            raise self.fail(
                "fail_closed_jurisdiction",
                f"several restricted jurisdictions ({', '.join(restricted)}): name the one "
                "that unknown clients fall into",
            )
        return None


def _implicit_jurisdiction(name: str) -> Jurisdiction:
    """A jurisdiction a region names without declaring it.

    The built-in lists apply by name; a two-letter name is taken as that one country (``US``);
    anything else has no countries until declared. Only EEA is restricted by default.
    """
    if name in BUILTIN_JURISDICTIONS:
        return Jurisdiction(name, name == DEFAULT_FAIL_CLOSED, BUILTIN_JURISDICTIONS[name])
    assigned = name in assigned_country_codes()
    countries = frozenset({name}) if assigned else frozenset()
    return Jurisdiction(name, False, countries)


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
