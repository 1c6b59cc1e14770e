"""From a country to the residency rule that binds a client (ARCHITECTURE.md §4).

A client's rule comes from its country through the topology: a country in a restricted
jurisdiction binds the client to that jurisdiction's nodes; an unknown country (and so every
private, reserved, unparsable or unlocatable address) falls into the topology's fail-closed
jurisdiction; a real country in no declared jurisdiction has no home jurisdiction and may use
any node.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from control.jurisdictions import DEFAULT_FAIL_CLOSED, EEA_COUNTRIES, assigned_country_codes
from control.topology import Jurisdiction, Topology
from geo.locations import LatLon, country_location

#: The jurisdiction that room policy ``eea`` pins a room's media to.
EEA = DEFAULT_FAIL_CLOSED


def default_topology() -> Topology:
    """The built-in rules without regions: the EEA restricted, unknown clients in the EEA,
    every other country unrestricted. What ``regio geo lookup`` uses without ``--topology``."""
    eea = Jurisdiction(EEA, True, EEA_COUNTRIES)
    return Topology(MappingProxyType({EEA: eea}), MappingProxyType({}), EEA)


@dataclass(frozen=True, slots=True)
class ClientPlace:
    """Where a client is, as far as residency is concerned."""

    country: str | None
    """ISO 3166-1 alpha-2 code, or None when unknown (the client then fails closed)."""
    jurisdiction: str | None
    """The client's jurisdiction; None means none at all (unrestricted)."""
    restricted: bool
    """True: the client may only ever be given nodes of :attr:`jurisdiction`."""
    location: LatLon | None
    """The country's representative point, for nearest-region choice; None if unknown."""


def normalize_country(code: object) -> str | None:
    """An assigned ISO 3166-1 alpha-2 code, upper case, or None.

    Databases carry pseudo-codes (MaxMind's old ``EU``/``AP``, ``ZZ``, ``XK``...) that are no
    country; they become None so the client fails closed.
    """
    if not isinstance(code, str) or len(code) != 2:
        return None
    upper = code.upper()
    return upper if upper in assigned_country_codes() else None


def place_client(topology: Topology, country: str | None) -> ClientPlace:
    """The residency rule for a client from ``country`` (None: unknown, fails closed)."""
    code = normalize_country(country)
    jurisdiction = topology.jurisdiction_of_country(code)
    return ClientPlace(
        country=code,
        jurisdiction=jurisdiction,
        restricted=is_restricted(topology, jurisdiction),
        location=country_location(code),
    )


def is_restricted(topology: Topology, jurisdiction: str | None) -> bool:
    """Whether clients of ``jurisdiction`` are bound to it. A name the topology does not know
    counts as restricted: a rule we cannot read must not fail open."""
    if jurisdiction is None:
        return False
    known = topology.jurisdictions.get(jurisdiction)
    return True if known is None else known.restricted
