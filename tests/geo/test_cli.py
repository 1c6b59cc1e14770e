"""``regio geo lookup`` and ``regio geo update`` as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import geo_lookup
from control.cli import main
from tests.geo.conftest import MakeDb

ROOT = Path(__file__).resolve().parents[2]


def lookup(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object], str]:
    status = main(["geo", "lookup", *args])
    out, err = capsys.readouterr()
    return status, (json.loads(out) if status == 0 else {}), err


@pytest.mark.parametrize(
    ("ip", "country", "jurisdiction"),
    [
        ("193.0.0.1", "NL", "EEA"),
        ("8.8.8.8", "US", None),
        ("::ffff:193.0.0.1", "NL", "EEA"),
        ("10.0.0.1", None, "EEA"),
        ("2001:db8::1", None, "EEA"),
    ],
)
def test_lookup_embedded(
    capsys: pytest.CaptureFixture[str], ip: str, country: str | None, jurisdiction: str | None
) -> None:
    status, document, err = lookup(capsys, ip)
    assert status == 0
    assert document["country"] == country
    assert document["jurisdiction"] == jurisdiction
    assert set(document) == {"ip", "country", "jurisdiction"}
    if country is None:
        assert "fails closed" in err


def test_lookup_bad_ip_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = lookup(capsys, "999.1.1.1")
    assert status == 2
    assert "not an IP address" in err


def test_lookup_with_db_and_topology(
    capsys: pytest.CaptureFixture[str], make_db: MakeDb, tmp_path: Path
) -> None:
    db = make_db(networks=[("81.2.69.0/24", {"country_code": "CH"})])
    topology = tmp_path / "t.toml"
    topology.write_text(
        'fail_closed_jurisdiction = "EEA"\n'
        '[jurisdictions.SWISS]\nrestricted = true\ncountries = ["CH"]\n'
        '[regions.zrh]\njurisdiction = "SWISS"\nlocation = [47.4, 8.5]\n'
    )
    status, document, _ = lookup(capsys, "81.2.69.1", "--db", str(db), "--topology", str(topology))
    assert status == 0
    assert document == {"ip": "81.2.69.1", "country": "CH", "jurisdiction": "SWISS"}


def test_lookup_missing_db_or_topology_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, _, err = lookup(capsys, "8.8.8.8", "--db", str(tmp_path / "none.mmdb"))
    assert status == 2 and "cannot open" in err
    status, _, err = lookup(capsys, "8.8.8.8", "--topology", str(tmp_path / "none.toml"))
    assert status == 2 and "none.toml" in err


def test_update_argument_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["geo", "update", "--dest", str(tmp_path / "x"), "--maxmind-license-key", "K"]) == 2
    assert "needs --url" in capsys.readouterr().err
    status = main(["geo", "update", "--dest", str(tmp_path / "x"), "--npm", "/nonexistent/npm"])
    assert status == 2
    err = capsys.readouterr().err
    assert "not found" in err and "unchanged" in err


def test_update_from_maxmind_file_url(
    capsys: pytest.CaptureFixture[str], make_db: MakeDb, tmp_path: Path
) -> None:
    source = make_db("download.mmdb")  # flat records holding the probes
    dest = tmp_path / "dest.mmdb"
    url = source.as_uri()
    assert (
        main(["geo", "update", "--dest", str(dest), "--maxmind-license-key", "K", "--url", url])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["format"] == "country_code"
    assert dest.read_bytes() == source.read_bytes()


def test_geo_help_in_a_real_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "control", "geo", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "lookup" in result.stdout and "update" in result.stdout


def test_benchmark_smoke() -> None:
    figures = geo_lookup.run(0.05)
    assert figures["lookups"] >= geo_lookup.ADDRESS_COUNT
    assert figures["lookups_per_second"] > 0
    assert figures["outcomes"]["found"] > 0
    assert len(set(geo_lookup.address_set(500))) == 500
