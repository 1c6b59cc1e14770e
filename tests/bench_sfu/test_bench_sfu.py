"""``regio bench sfu``: a short real run (router, relay, worker processes) and argument errors.

No assertion here is about speed: only completeness (every field, every packet accounted for)
and behaviour (clear errors, processes stopped).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks.sfu import report
from benchmarks.sfu.runner import BenchSpec, split_rooms
from control.cli import main

PHASE_FIELDS = {
    "server", "rate", "round", "sent", "expected", "delivered", "lost", "loss_pct", "duplicates",
    "corrupt", "send_errors", "send_window_s", "offered_pps", "forwarded_pps", "forwarded_mbps",
    "latency_p50_us", "latency_p99_us", "latency_p999_us", "latency_max_us", "server_cpu_s",
    "server_cpu_pct", "server_cpu_us_per_packet", "server_cpu_ms_per_mb", "generator_cpu_s",
    "generator_cpu_pct", "server_kernel_drops", "client_kernel_drops", "retransmissions",
    "keyframe_requests", "other_cpu_pct", "server_cpu_wait_pct", "queued_p50_us",
    "queued_p99_us", "queued_p999_us", "steal_cpu_pct",
}  # fmt: skip


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["bench", "sfu", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, captured.err


@pytest.mark.slow
def test_short_meeting_sweep_accounts_for_every_packet(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    no_leftover_processes: None,
) -> None:
    """Default load (meeting) through the router and the SRTP relay, two sweep steps."""
    results_file = tmp_path / "RESULTS.md"
    original = report.results.record_section

    def record_here(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs, path=results_file)

    monkeypatch.setattr(report.results, "record_section", record_here)
    status, out, _ = run_cli(capsys, "--rooms", "1", "--publishers", "1", "--subscribers", "2",
                             "--video-kbps", "300", "--seconds", "1", "--sweep",
                             "--sweep-steps", "2", "--json", "--record",
                             "--plot", str(tmp_path / "sfu.png"))
    assert status == 0
    document = json.loads(out)
    assert document["plots"] == [str(tmp_path / "sfu.png")]
    assert (tmp_path / "sfu.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"machine", "spec", "pinned", "sfu", "relay", "janus", "ratio", "sweep",
            "sustained_forwarded_pps", "sustained_forwarded_pps_at_socket",
            "router_pps_per_core_estimate"} <= set(document)
    assert document["spec"]["load"] == "meeting" and document["janus"] is None
    for phase in ("sfu", "relay"):
        windows = document["sweep"][phase]
        assert 1 <= len(windows) <= 2
        if len(windows) == 1:  # the sweep stops at the first step beyond both its limits
            assert windows[0]["loss_pct"] > 0.1 or (windows[0]["latency_p99_us"] > 5000
                                                    and windows[0]["queued_p99_us"] > 5000)
        for figures in windows:
            assert set(figures) == PHASE_FIELDS
            assert figures["sent"] > 50  # audio and video of one publisher for a second
            # Loopback loses nothing unless the shared machine overflows a socket queue,
            # and then the kernel counted it.
            drops = figures["server_kernel_drops"] + figures["client_kernel_drops"]
            assert figures["expected"] - figures["delivered"] <= drops
            assert figures["duplicates"] == 0 and figures["corrupt"] == 0
            assert figures["latency_p50_us"] is not None
            # The kernel stamped each copy on the subscriber's socket before the generator
            # read it: the server's share is never more than the whole.
            for share, whole in (("queued_p50_us", "latency_p50_us"),
                                 ("queued_p99_us", "latency_p99_us")):
                assert 0 <= figures[share] <= figures[whole]
            assert figures["server_cpu_ms_per_mb"] is not None
    text = results_file.read_text()
    assert "regio bench sfu --load meeting --rooms 1 --publishers 1 --subscribers 2" in text
    assert "| regio router |" in text and "| bare SRTP relay |" in text


@pytest.mark.slow
def test_short_audio_run_still_measures_the_old_case(
    capsys: pytest.CaptureFixture[str], no_leftover_processes: None,
) -> None:
    status, out, _ = run_cli(capsys, "--load", "audio", "--subscribers", "2", "--pps", "200",
                             "--seconds", "1", "--no-relay", "--rounds", "2", "--json")
    assert status == 0
    document = json.loads(out)
    rounds = document["rounds"]["sfu"]
    assert [w["round"] for w in rounds] == [1, 2]
    assert document["sfu"] in rounds  # the median round stands for the server
    for figures in rounds:
        drops = figures["server_kernel_drops"] + figures["client_kernel_drops"]
        assert figures["expected"] == 2 * figures["sent"]  # two subscribers
        assert figures["expected"] - figures["delivered"] <= drops
    assert document["relay"] is None


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
        (["--video-kbps", "10"], "--video-kbps must be 50-50000"),
        (["--seconds", "1000"], "--seconds must be at most 600"),
        (["--seconds", "0.001"], "--seconds must be at least 0.5"),
        (["--profile", "/nonexistent-dir/x.txt"], "--profile: directory"),
        (["--profile", "/tmp"], "--profile must name a file"),
        (["--sweep", "--sweep-steps", "0"], "--sweep-steps must be 1-30"),
        (["--sweep", "--sweep-factor", "1"], "--sweep-factor must be 1.05-4"),
        (["--sweep", "--sweep-factor", "nan"], "--sweep-factor must be 1.05-4"),
        (["--sweep", "--sweep-factor", "4", "--sweep-steps", "30"], "within 1000x"),
        (["--target", "janus", "--load", "audio"], "--target janus needs --load meeting"),
        (["--rounds", "0"], "--rounds must be 1-9"),
        (["--rounds", "2", "--sweep"], "--rounds and --sweep do not combine"),
        (["--sweep-all"], "--sweep-all needs --sweep"),
        (["--sweep-factor", "1.2"], "--sweep-factor needs --sweep"),
        (["--plot", "out.svg"], "--plot must name a .png file"),
        (["--plot", "/nonexistent-dir/x.png"], "--plot: directory"),
        (["--workers", "0"], "--workers must be 1-16"),
        (["--workers", "17"], "--workers must be 1-16"),
        (["--compare-workers", "1"], "--compare-workers must be 2-16 and differ"),
        (["--workers", "2", "--compare-workers", "2"], "--compare-workers must be 2-16"),
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


def test_a_directory_is_no_plot_or_profile_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, no_leftover_processes: None,
) -> None:
    directory = tmp_path / "figure.png"
    directory.mkdir()
    for option in ("--plot", "--profile"):
        status, _, err = run_cli(capsys, option, str(directory))
        assert status == 2
        assert f"{option} must name a file, not the directory" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["--pps", "fast"], "invalid float value"),
    (["--load", "video"], "invalid choice"),
    (["--target", "mediasoup"], "invalid choice"),
])
def test_non_numeric_or_unknown_argument_is_an_argparse_error(
        capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "sfu", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def assert_every_packet_accounted_for(document: dict[str, Any], *servers: str) -> None:
    """Each server's window sent real traffic, and what was not delivered the kernel dropped."""
    for key in servers:
        figures = document[key]
        drops = figures["server_kernel_drops"] + figures["client_kernel_drops"]
        assert figures["sent"] > 50
        assert figures["expected"] - figures["delivered"] <= drops
        assert figures["corrupt"] == 0


@pytest.mark.slow
def test_python_path_and_two_workers_side_by_side(
    capsys: pytest.CaptureFixture[str], no_leftover_processes: None,
) -> None:
    """The router with its compiled loops, with them switched off, and with two workers (rooms
    placed on both, tokens naming each), one short window each: every packet accounted for."""
    status, out, err = run_cli(capsys, "--python-path", "--compare-workers", "2", "--no-relay",
                               "--rooms", "2", "--subscribers", "2", "--video-kbps", "300",
                               "--seconds", "1", "--json")
    assert status == 0, err
    document = json.loads(out)
    assert_every_packet_accounted_for(document, "sfu", "regio-python", "regio-workers")
    assert document["regio-workers"]["server"] == "regio router, 2 workers"
    assert document["ratio"]["workers_scaling"]["ratio"] > 0


def test_rooms_are_split_whole_across_workers() -> None:
    assert split_rooms(5, 2) == [["room0", "room2", "room4"], ["room1", "room3"]]
    assert split_rooms(2, 8) == [["room0"], ["room1"]]
    assert BenchSpec(1, 1, 1, 1.0, 1.0).problems() == []


@pytest.mark.slow
def test_short_run_through_janus_side_by_side(
    capsys: pytest.CaptureFixture[str], no_leftover_processes: None,
) -> None:
    if shutil.which("janus") is None:  # a declared dependency: missing is a failure
        pytest.fail("Debian's janus is not installed: run `make setup`")
    if os.geteuid() != 0:
        problem = "needs root (Janus runs on a network-namespace host)"
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root: {problem}")
        pytest.skip(problem)
    namespaces_before = _namespaces()
    status, out, err = run_cli(capsys, "--target", "janus", "--no-relay", "--subscribers", "2",
                               "--video-kbps", "300", "--seconds", "1", "--json")
    assert status == 0, err
    document = json.loads(out)
    assert_every_packet_accounted_for(document, "sfu", "janus")
    assert document["janus"]["server"] == "janus"
    assert document["ratio"]["cpu_per_packet_vs_janus"] is not None
    assert _namespaces() == namespaces_before  # the bench deleted its namespace


def _namespaces() -> set[str]:
    import subprocess

    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                             check=False).stdout
    return {line.split()[0] for line in listing.splitlines() if line.startswith("sfub-")}
