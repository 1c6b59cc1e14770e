"""Fixtures: an in-process TURN server on loopback, and a UDP peer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.turn.netclient import REGION, SECRET, self_signed
from turn.server.config import TurnConfig
from turn.server.server import TurnServer


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return self_signed(Path(tmp_path_factory.mktemp("tls")))


def turn_config(tls_files: tuple[str, str] | None = None, **overrides: object) -> TurnConfig:
    fields: dict[str, object] = {
        "region": REGION,
        "auth_secret": [SECRET],
        "listen": ["127.0.0.1:0"],
        "tcp_listen": ["127.0.0.1:0"],
        "relay_ports": "52000-52999",
        # Not 127.0.0.1: test peers bind ephemeral ports there, and a port that happened to
        # fall in the relay range would be (rightly) denied as one of the node's own.
        "relay_ip": "127.0.0.3",
    }
    if tls_files is not None:
        fields.update(tls_listen=["127.0.0.1:0"], tls_cert=tls_files[0], tls_key=tls_files[1])
    fields.update(overrides)
    return TurnConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture
async def start_server(nursery: trio.Nursery) -> AsyncIterator[object]:
    async def start(config: TurnConfig) -> TurnServer:
        server: TurnServer = await nursery.start(TurnServer(config).run)
        return server

    yield start


@pytest.fixture
async def peer() -> AsyncIterator[trio.socket.SocketType]:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    try:
        yield sock
    finally:
        sock.close()
