"""A throwaway CA, a server certificate for 127.0.0.1 and a client certificate (mutual TLS)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from control.labpki import CLIENT_AUTH, SERVER_AUTH, make_ca, write_cert, write_leaf


@dataclass(frozen=True, slots=True)
class TestPki:
    ca_cert: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca_cert: str


def make_pki(directory: Path) -> TestPki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca("regio test CA")
    server_cert, server_key = write_leaf(directory, "server", ca, ["127.0.0.1"], SERVER_AUTH)
    client_cert, client_key = write_leaf(directory, "client", ca, ["127.0.0.1"], CLIENT_AUTH)
    return TestPki(
        ca_cert=write_cert(directory / "ca.pem", ca.cert),
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
        other_ca_cert=write_cert(directory / "other-ca.pem", make_ca("some other CA").cert),
    )
