"""``regio bench frontdoor`` end to end, as a user runs it: no secrets key in the environment
(the bench's cluster seals its secrets with a key of its own), one short run, every figure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from control.secretbox import ENV_VAR
from tests.control.conftest import REPO, python_env

pytestmark = [pytest.mark.etcd, pytest.mark.slow]


def test_bench_frontdoor_runs_from_a_clean_environment() -> None:
    env = python_env()
    env.pop(ENV_VAR, None)  # the suite sets one for everything else; a user has none
    done = subprocess.run(
        [sys.executable, "-m", "control", "bench", "frontdoor", "--seconds", "1",
         "--concurrency", "2", "--json"],
        capture_output=True, text=True, env=env, cwd=str(REPO), timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout)
    for phase in ("existing_rooms", "new_rooms"):
        result = figures[phase]
        assert result["joins"] > 0 and result["joins_per_second"] > 0, result
        assert set(result["statuses"]) == {"200"}, result  # every join admitted
        assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert figures["geoip_lookups_per_second"] > 0
