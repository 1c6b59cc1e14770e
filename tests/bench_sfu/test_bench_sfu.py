"""``regio bench sfu``: a short real run (router, relay, worker processes) and argument errors.

No assertion here is about speed: only completeness (every field, every packet accounted for)
and behaviour (clear errors, processes stopped).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.sfu import report
from benchmarks.sfu.runner import BenchSpec, split_rooms
from control.cli import main

PHASE_FIELDS = {
    "server", "sent", "expected", "delivered", "lost", "loss_pct", "duplicates", "corrupt",
    "send_errors", "send_window_s", "offered_pps", "forwarded_pps", "latency_p50_us",
    "latency_p99_us", "latency_max_us", "server_cpu_s", "server_cpu_pct",
    "server_cpu_us_per_packet", "generator_cpu_s", "generator_cpu_pct", "rcvbuf_drops",
    "other_cpu_pct", "server_cpu_wait_pct",
}  # fmt: skip


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["bench", "sfu", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, captured.err


@pytest.mark.slow
def test_short_run_loses_nothing_and_reports_every_field(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    no_leftover_processes: None,
) -> None:
    results_file = tmp_path / "RESULTS.md"
    original = report.results.record_section

    def record_here(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs, path=results_file)

    monkeypatch.setattr(report.results, "record_section", record_here)
    status, out, _ = run_cli(capsys, "--rooms", "1", "--publishers", "1", "--subscribers", "2",
                             "--pps", "200", "--seconds", "1", "--json", "--record")
    assert status == 0
    document = json.loads(out)
    assert {"machine", "spec", "pinned", "sfu", "relay", "ratio",
            "router_pps_per_core_estimate"} <= set(document)
    for phase in ("sfu", "relay"):
        figures = document[phase]
        assert set(figures) == PHASE_FIELDS
        assert figures["sent"] > 0
        assert figures["expected"] == 2 * figures["sent"]  # two subscribers
        assert figures["delivered"] == figures["expected"]
        assert figures["lost"] == 0 and figures["duplicates"] == 0 and figures["corrupt"] == 0
        assert figures["latency_p50_us"] is not None and figures["latency_p99_us"] is not None
    assert set(document["ratio"]) == {"cpu_per_packet_vs_relay", "forwarded_pps_vs_relay"}
    text = results_file.read_text()
    assert "regio bench sfu --rooms 1 --publishers 1 --subscribers 2 --pps 200" in text
    assert "| regio router |" in text and "| bare relay |" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rooms", "0"], "--rooms, --publishers, --subscribers"),
        (["--subscribers", "-1"], "must be >= 1"),
        (["--client-workers", "0"], "--client-workers"),
        (["--pps", "0"], "--pps and --seconds must be positive"),
        (["--seconds", "-2"], "--pps and --seconds must be positive"),
        (["--size", "8"], "--size must be 16-1200"),
        (["--rooms", "500", "--subscribers", "5"], "at most 2000 participants"),
    ],
)
def test_bad_arguments_get_one_clear_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str,
    no_leftover_processes: None,
) -> None:
    status, _, err = run_cli(capsys, *argv)
    assert status == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_non_numeric_argument_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "sfu", "--pps", "fast"])
    assert exc.value.code == 2
    assert "invalid float value" in capsys.readouterr().err


def test_rooms_are_split_whole_across_workers() -> None:
    assert split_rooms(5, 2) == [["room0", "room2", "room4"], ["room1", "room3"]]
    assert split_rooms(2, 8) == [["room0"], ["room1"]]
    assert BenchSpec(1, 1, 1, 1.0, 1.0).problems() == []
