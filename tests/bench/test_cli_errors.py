"""Operator mistakes give one clear line on stderr (exit 2), never a traceback."""

from __future__ import annotations

import pytest

from benchmarks.turn_load.servers import ServerProcess, free_udp_port
from benchmarks.turn_load.target import parse_target
from control.cli import main
from tests.bench.conftest import SECRET


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(["bench", "turn", *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, err


def test_wrong_secret_names_the_401(
    coturn: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = run_cli(capsys, "--target", coturn.target, "--secret", "not-" + SECRET)
    assert status == 2
    assert "401" in err and "--secret" in err


def test_unreachable_target(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_udp_port()
    status, err = run_cli(capsys, "--target", f"127.0.0.1:{port}", "--secret", "s")
    assert status == 2 and "nothing listens" in err and str(port) in err


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("127.0.0.1", "not HOST:PORT"),
        ("127.0.0.1:http", "not a number"),
        ("127.0.0.1:70000", "not in 1-65535"),
        ("::1:3478", "brackets"),
        ("no-such-host.invalid:3478", "cannot resolve"),
    ],
)
def test_bad_target(capsys: pytest.CaptureFixture[str], target: str, message: str) -> None:
    status, err = run_cli(capsys, "--target", target, "--secret", "s")
    assert status == 2 and message in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--pairs", "0"], "--pairs"),
        (["--pps", "-5"], "--pps"),
        (["--size", "4"], "--size"),
        (["--server-pid", "999999999"], "no such process"),
    ],
)
def test_bad_load_flags(
    coturn: ServerProcess, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    status, err = run_cli(capsys, "--target", coturn.target, "--secret", SECRET, *flags)
    assert status == 2 and message in err


def test_parse_target_ipv6_and_names() -> None:
    assert parse_target("[::1]:3478") == ("::1", 3478)
    assert parse_target("localhost:3478")[1] == 3478
