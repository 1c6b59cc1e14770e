"""The ``regio`` command as an operator meets it: help text, errors, the codec benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def regio(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_explains_every_subcommand() -> None:
    result = regio("--help")
    assert result.returncode == 0
    assert "bench" in result.stdout
    assert "region-aware" in result.stdout


def test_unknown_subcommand_is_a_usage_error() -> None:
    result = regio("frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_bench_codec_prints_json_figures() -> None:
    result = regio("bench", "codec", "--json", "--seconds", "0.002", "--repeats", "1")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    names = [figure["name"] for figure in document["figures"]]
    assert any("RTP header" in name for name in names)
    assert any("RTCP compound" in name for name in names)
    assert any("STUN binding request" in name for name in names)
    assert all(figure["best_ns"] > 0 for figure in document["figures"])
    assert document["machine"]["cores"] >= 1


def test_bench_codec_rejects_bad_arguments() -> None:
    result = regio("bench", "codec", "--filter", "no-such-case", "--seconds", "0.001")
    assert result.returncode == 2
    assert result.stderr.strip() == "regio bench: error: no codec benchmark matches 'no-such-case'"
    result = regio("bench", "codec", "--seconds", "0")
    assert result.returncode == 2
    assert "--seconds must be positive" in result.stderr
