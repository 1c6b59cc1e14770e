"""The atheris harnesses (issue 15 item 13): every committed seed replayed in-process, and a
short coverage-guided run of each harness in a subprocess (bounded by iterations, not time).

The smoke run proves each harness starts under instrumentation, reads its seed corpus and
survives a few hundred mutated inputs; the long runs are ``python -m fuzzing.run TARGET``
(README, "Fuzzing"). A crash they find becomes a test in tests/fuzzing/test_regressions.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzing.run import CORPUS
from fuzzing.targets import COMPONENTS, TARGETS

REPO = Path(__file__).resolve().parents[2]
SMOKE_RUNS = 400


def test_every_target_has_components_and_seeds() -> None:
    assert set(TARGETS) == set(COMPONENTS) == {
        "stun_turn", "rtp_rtcp", "sdp", "signaling", "frontdoor_http"}
    for name in TARGETS:
        seeds = list((CORPUS / name).iterdir())
        assert 2 <= len(seeds) <= 20, name
        assert sum(p.stat().st_size for p in seeds) < 64 * 1024, name


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_seeds_replay_in_process(name: str) -> None:
    for seed in sorted((CORPUS / name).iterdir()):
        TARGETS[name](seed.read_bytes())


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_short_fuzzing_run(name: str, tmp_path: Path) -> None:
    """``-runs`` bounds the work; the timeout is only a guard against a hung harness."""
    scratch = tmp_path / "corpus"
    scratch.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "fuzzing.run", name, f"-runs={SMOKE_RUNS}", "-seed=1",
         f"-artifact_prefix={tmp_path}/", str(scratch), str(CORPUS / name)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert f"Done {SMOKE_RUNS} runs" in log, log[-2000:]
    assert "cov:" in log  # the components really are instrumented
    assert not list(tmp_path.glob("crash-*")), log[-4000:]
