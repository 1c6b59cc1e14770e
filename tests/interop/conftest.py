"""A real router process for interop tests, stopped by pid whatever the test does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.sfu.router_proc import RouterProcess, start_router


@pytest.fixture
def router_process() -> Iterator[RouterProcess]:
    router = start_router()
    try:
        yield router
    finally:
        router.stop()
