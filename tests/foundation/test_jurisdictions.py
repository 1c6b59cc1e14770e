"""The built-in EEA list, justified code by code (ARCHITECTURE.md §4, REFERENCES.md)."""

from __future__ import annotations

from control.jurisdictions import (
    EEA_COUNTRIES,
    EEA_EFTA_STATES,
    EU_MEMBER_STATES,
    EU_TERRITORIES_WITH_OWN_CODE,
    NOT_EEA,
    assigned_country_codes,
)


def test_eu_has_27_member_states() -> None:
    assert len(EU_MEMBER_STATES) == 27
    assert "GR" in EU_MEMBER_STATES and "EL" not in EU_MEMBER_STATES
    assert "GB" not in EU_MEMBER_STATES


def test_eea_is_eu_plus_territories_plus_efta_three() -> None:
    assert EEA_EFTA_STATES == {"IS", "LI", "NO"}
    assert set(EU_TERRITORIES_WITH_OWN_CODE) == {"AX", "GF", "GP", "MQ", "RE", "YT", "MF"}
    assert len(EEA_COUNTRIES) == 27 + 7 + 3


def test_territories_outside_the_eea_are_excluded() -> None:
    for code in ("SJ", "GL", "FO", "NC", "PF", "BL", "CH", "GB", "GI"):
        assert code in NOT_EEA
        assert code not in EEA_COUNTRIES


def test_every_code_is_an_assigned_iso_code() -> None:
    assigned = assigned_country_codes()
    assert EEA_COUNTRIES <= assigned
    assert set(NOT_EEA) <= assigned
    assert "XX" not in assigned and "ZZ" not in assigned and "EU" not in assigned


def test_every_territory_entry_is_justified() -> None:
    assert all(len(reason) > 20 for reason in EU_TERRITORIES_WITH_OWN_CODE.values())
    assert all(len(reason) > 20 for reason in NOT_EEA.values())
