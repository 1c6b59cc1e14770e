"""Namespace-host tests need root: they fail loudly in CI (``CI`` set), skip elsewhere.

CI runs as root on a clean machine, so a missing privilege there is a broken setup, never a
reason to skip; a developer without root gets a skip that says why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from control.netns import NetnsError, require_root

HERE = Path(__file__).resolve().parent


def _root_problem() -> str | None:
    try:
        require_root("namespace-host tests")
    except NetnsError as exc:
        return str(exc)
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    problem = _root_problem()
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.netns)
        if problem is not None and not os.environ.get("CI"):
            item.add_marker(pytest.mark.skip(reason=problem))


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    problem = _root_problem()
    if problem is not None:
        pytest.fail(f"CI must run these as root: {problem}")
