"""The built-in country lists of jurisdictions, starting with the EEA.

Membership is computed from ISO 3166-1 alpha-2 codes, never from a database flag: MaxMind's
``is_in_european_union`` leaves out Norway, Iceland and Liechtenstein, and EU territories with
their own ISO codes would otherwise slip through (REFERENCES.md, "residency and privacy").
"""

from __future__ import annotations

#: The 27 member states of the European Union (Greece is ``GR`` in ISO 3166-1; the EU's own
#: ``EL`` abbreviation is not an ISO code and never appears in GeoIP data).
EU_MEMBER_STATES: frozenset[str] = frozenset(
    {
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
        "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
    }
)  # fmt: skip

#: Parts of the EU that ISO 3166-1 codes separately. Each is inside the EU (TFEU art. 355):
EU_TERRITORIES_WITH_OWN_CODE: dict[str, str] = {
    "AX": "Åland Islands: part of Finland and of the EU (special status, Protocol 2 of 1994 Act)",
    "GF": "French Guiana: outermost region of the EU (TFEU art. 349)",
    "GP": "Guadeloupe: outermost region of the EU (TFEU art. 349)",
    "MQ": "Martinique: outermost region of the EU (TFEU art. 349)",
    "RE": "Réunion: outermost region of the EU (TFEU art. 349)",
    "YT": "Mayotte: outermost region of the EU since 2014 (TFEU art. 349)",
    "MF": "Saint Martin (French part): outermost region of the EU (TFEU art. 349)",
}
# The Canary Islands, the Azores, Madeira, Ceuta and Melilla are in the EU too, but ISO 3166-1
# gives them no alpha-2 code of their own (they are ES and PT), so they need no entry.

#: EEA members outside the EU (EEA Agreement, 1994; Liechtenstein from 1995).
EEA_EFTA_STATES: frozenset[str] = frozenset({"IS", "LI", "NO"})

#: The shipped default ``EEA`` jurisdiction.
EEA_COUNTRIES: frozenset[str] = (
    EU_MEMBER_STATES | frozenset(EU_TERRITORIES_WITH_OWN_CODE) | EEA_EFTA_STATES
)

#: Territories that are easy to mistake for EEA but are outside it, with the reason. Tests
#: check that none of them is in :data:`EEA_COUNTRIES`.
NOT_EEA: dict[str, str] = {
    "SJ": "Svalbard and Jan Mayen: Norwegian, but excluded from the EEA Agreement (art. 126)",
    "GL": "Greenland: left the EEC in 1985; an overseas country and territory (OCT)",
    "FO": "Faroe Islands: Danish, never part of the EU or EEA",
    "NC": "New Caledonia: French OCT, outside the EU",
    "PF": "French Polynesia: French OCT, outside the EU",
    "BL": "Saint Barthélemy: left the EU in 2012, now an OCT",
    "PM": "Saint Pierre and Miquelon: French OCT, outside the EU",
    "WF": "Wallis and Futuna: French OCT, outside the EU",
    "TF": "French Southern Territories: OCT, outside the EU",
    "AW": "Aruba: Dutch Caribbean OCT, outside the EU",
    "CW": "Curaçao: Dutch Caribbean OCT, outside the EU",
    "SX": "Sint Maarten (Dutch part): OCT, outside the EU",
    "BQ": "Caribbean Netherlands: OCT, outside the EU",
    "GI": "Gibraltar: left the EU with the United Kingdom in 2020",
    "GB": "United Kingdom: left the EU and the EEA in 2020",
    "CH": "Switzerland: EFTA but not in the EEA",
    "IM": "Isle of Man: Crown Dependency, never in the EU",
    "JE": "Jersey: Crown Dependency, never in the EU",
    "GG": "Guernsey: Crown Dependency, never in the EU",
}

#: Built-in country lists by jurisdiction name; a topology may name these without ``countries``.
BUILTIN_JURISDICTIONS: dict[str, frozenset[str]] = {"EEA": EEA_COUNTRIES}

#: The jurisdiction that unknown, private and unlocatable clients fall into (fail closed).
DEFAULT_FAIL_CLOSED = "EEA"


def assigned_country_codes() -> frozenset[str]:
    """Every officially assigned ISO 3166-1 alpha-2 code (from pycountry's copy of the
    iso-codes database). Codes outside it (``XX``, ``ZZ``, MaxMind's old ``EU``/``AP``) are
    not countries, so a client "from" one fails closed."""
    global _ASSIGNED
    if _ASSIGNED is None:
        import pycountry

        _ASSIGNED = frozenset(country.alpha_2 for country in pycountry.countries)
    return _ASSIGNED


_ASSIGNED: frozenset[str] | None = None
