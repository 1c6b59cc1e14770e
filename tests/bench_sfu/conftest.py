"""Child processes the SFU benchmark starts must all be gone after each test.

The benchmark stops its router, relay and workers by pid in ``finally`` blocks; this fixture
checks that it did, and stops (by pid) anything left so one failure cannot leak into others.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest


def child_pids() -> set[int]:
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def no_leftover_processes() -> Iterator[None]:
    before = child_pids()
    yield
    left = {pid for pid in child_pids() - before if _alive(pid)}
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"benchmark left child processes behind: {sorted(left)}"
