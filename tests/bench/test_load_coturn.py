"""The load generator against a real coturn on loopback: short runs, exact accounting.

No wall-clock assertions: only that allocations succeed, every packet sent is delivered once,
and the reports carry every figure.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path

import pytest

from benchmarks import results
from benchmarks.turn_load.runner import LoadReport, LoadSpec, run_load
from benchmarks.turn_load.servers import ServerProcess
from benchmarks.turn_load.session import Session, WorkerConfig
from control.cli import main
from tests.bench.conftest import SECRET


def test_allocations_permissions_channels_and_cleanup(coturn: ServerProcess) -> None:
    config = WorkerConfig(coturn.host, coturn.port, SECRET, None, None, 2, 500, 1, 100)
    session = Session(config)
    try:
        session.setup()
        assert all(session.relayed) and all(session.ready)
        assert len(set(session.relayed)) == 4  # one relayed address per client
    finally:
        session.close()
    assert all(session.closed)


def test_short_run_delivers_everything(coturn: ServerProcess) -> None:
    spec = LoadSpec(
        coturn.host, coturn.port, SECRET, pairs=2, pps=500, seconds=1, server_pid=coturn.pid
    )
    report = run_load(spec)
    assert report.sent > 0
    assert report.delivered == report.sent
    assert report.lost == 0 and report.loss_pct == 0
    assert report.duplicates == 0 and not report.control_failures
    assert report.server == "turnserver"
    assert report.server_cpu_s is not None and report.server_cpu_s >= 0
    assert report.latency_p50_us is not None and report.latency_p99_us is not None


def test_region_bound_usernames_and_workers(coturn: ServerProcess) -> None:
    """coturn reads only the expiry field, so Regio's 3-field usernames work there too;
    two worker subprocesses split the pairs and their figures add up."""
    spec = LoadSpec(
        coturn.host, coturn.port, SECRET, region="local", pairs=2, pps=400, seconds=0.5, workers=2
    )
    report = run_load(spec)
    assert report.workers == 2
    assert report.sent > 0 and report.delivered == report.sent


def test_cli_json_has_every_field(
    coturn: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "turn", "--target", coturn.target, "--secret", SECRET]
    argv += ["--server-pid", str(coturn.pid), "--pairs", "2", "--pps", "500", "--seconds", "1"]
    assert main([*argv, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    for f in fields(LoadReport):
        assert f.name in document, f.name
    assert document["machine"]["cores"] == os.cpu_count()
    assert document["lost"] == 0 and document["delivered"] == document["sent"] > 0
    assert document["server_cpu_us_per_packet"] is not None


def test_cli_table_and_record(
    coturn: ServerProcess,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "RESULTS.md"
    original = results.record_section
    monkeypatch.setattr(
        results, "record_section", lambda *a, **k: original(*a, **{**k, "path": target})
    )
    argv = ["bench", "turn", "--target", coturn.target, "--secret", SECRET, "--pps", "300"]
    assert main([*argv, "--seconds", "0.5", "--record", "--label", "coturn test"]) == 0
    out = capsys.readouterr().out
    assert "latency p99" in out and "server CPU" in out
    text = target.read_text()
    assert "## TURN relay load" in text and "| coturn test | 2 |" in text
    assert SECRET not in text  # the command line recorded never carries the secret


def test_compare_coturn_only(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "bench",
        "turn-compare",
        "--skip-regio",
        "--rounds",
        "2",
        "--pairs",
        "1",
        "--pps",
        "300",
    ]
    assert main([*argv, "--seconds", "0.5", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["coturn"]["delivered"] == document["coturn"]["sent"] > 0
    assert document["regio"] is None and "skip" in document["regio_skipped"]
    assert document["cpu_per_packet_ratio"] is None
    first = document["first_allocation"]["coturn"]
    assert first["clients"] == 20 and 0 <= first["retransmitted"] <= 20
    assert 0 < first["p50_ms"] <= first["max_ms"]
    assert document["first_allocation"]["regio"] is None
