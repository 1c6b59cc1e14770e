"""Fixtures for the front door tests: a subprocess cluster and addresses per country.

The integration cluster (real etcd, real ``regio router`` and ``regio turn`` processes that
register themselves with real leases, the front door as a ``regio frontdoor`` subprocess) lives
for the whole module: starting it costs a few seconds, and the tests that destroy parts of it
(drain, kill) run last. Every process is stopped by pid in the fixture's finaliser.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import maxminddb
import pytest

from geo.geoip import DEFAULT_DATABASE, GeoIP
from tests.control.conftest import client, etcd  # noqa: F401  (real-etcd fixtures)

COUNTRIES = ("DE", "FR", "NO", "IS", "LI", "RE", "GP", "AX", "US", "JP", "BR")


def find_addresses(countries: tuple[str, ...], per_country: int = 3) -> dict[str, list[str]]:
    """Public IPv4 addresses the embedded database maps to each country, from distinct /24s,
    checked through :class:`GeoIP` (the front door's own lookup path)."""
    found: dict[str, list[str]] = {c: [] for c in countries}
    geo = GeoIP(DEFAULT_DATABASE, private_copy=False)
    with maxminddb.open_database(str(DEFAULT_DATABASE)) as reader:
        for network, record in reader:
            code = record.get("country_code") if isinstance(record, dict) else None
            if code not in found or len(found[code]) >= per_country or network.version != 4:
                continue
            if network.num_addresses < 256:
                continue
            for offset in (1, 300, 600):
                if offset >= network.num_addresses or len(found[code]) >= per_country:
                    continue
                address = str(network.network_address + offset)
                net24 = ipaddress.ip_network(f"{address}/24", strict=False)
                if any(ipaddress.ip_address(a) in net24 for a in found[code]):
                    continue
                if geo.lookup(address).country == code:
                    found[code].append(address)
            if all(len(v) >= per_country for v in found.values()):
                break
    geo.close()
    missing = [c for c, v in found.items() if len(v) < per_country]
    assert not missing, f"embedded database has no addresses for {missing}"
    return found


@pytest.fixture(scope="session")
def country_addresses() -> dict[str, list[str]]:
    return find_addresses(COUNTRIES)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    from tests.control.certs import make_pki

    pki = make_pki(Path(tmp_path_factory.mktemp("pki")))
    yield pki.server_cert, pki.server_key
