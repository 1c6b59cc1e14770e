"""Fixtures for the TURN load generator tests: a real coturn on loopback, stopped by pid."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from benchmarks.turn_load.servers import ServerProcess, start_coturn

SECRET = "bench-test-secret"


@pytest.fixture(scope="session")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Debian ``turnserver`` with REST auth and loopback peers allowed, for the whole session."""
    if shutil.which("turnserver") is None:
        pytest.fail("coturn (turnserver) is not installed: run `make setup`")
    server = start_coturn(SECRET, tmp_path_factory.mktemp("coturn"), pairs=8)
    try:
        yield server
    finally:
        server.stop()
