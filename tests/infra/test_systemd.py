"""The systemd units in infra/systemd/: ``systemd-analyze verify`` (which fails on nothing but
prints every problem, so the test demands silence), the offline security score, and the
settings the deployment relies on (notify + watchdog, sandbox, drain on stop)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from control.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "infra" / "systemd"
INSTANCES = {"regio-router@.service": "eu-central", "regio-turn@.service": "eu-central",
             "regio-frontdoor@.service": "main"}
SANDBOX_MARK = "# --- sandbox"

def regio_executable() -> str:
    found = Path(sys.executable).with_name("regio")
    assert found.exists(), "the regio entry point is installed beside the venv's python"
    return str(found)


def installed_copies(tmp_path: Path) -> list[Path]:
    """The units as an install would lay them out, with ExecStart pointing at this checkout's
    ``regio`` (verify checks that the executable exists); the instance names to verify."""
    for name in INSTANCES:
        text = (UNITS / name).read_text().replace("/usr/local/bin/regio", regio_executable())
        (tmp_path / name).write_text(text)
    return [tmp_path / name.replace("@.", f"@{instance}.") for name, instance in INSTANCES.items()]


def settings(name: str) -> dict[str, list[str]]:
    """``Key=value`` assignments of a unit (every value of repeated keys, in order)."""
    out: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def verify(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, paths)],
                          capture_output=True, text=True, timeout=120, cwd=paths[0].parent)


def test_units_verify_without_a_single_warning(tmp_path: Path) -> None:
    result = verify(installed_copies(tmp_path))
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr)


def test_verify_output_does_catch_mistakes(tmp_path: Path) -> None:
    """The check above is meaningful: a misspelt key or value is reported (exit code 0!)."""
    paths = installed_copies(tmp_path)
    broken = paths[0].parent / "regio-router@.service"
    broken.write_text(broken.read_text().replace("Type=notify", "Type=notfy")
                      .replace("ProtectSystem=", "ProtectSystm="))
    result = verify(paths[:1])
    output = result.stdout + result.stderr
    assert "notfy" in output and "ProtectSystm" in output


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_offline_security_exposure_is_low(tmp_path: Path, name: str) -> None:
    path = next(p for p in installed_copies(tmp_path) if p.name.startswith(name.split("@")[0]))
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                             str(path)], capture_output=True, text=True, timeout=120)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    # 0 is a fully isolated service, 10 an unprotected one; a network server that binds
    # public ports cannot go far below 1.5 (PrivateNetwork, IPAddressDeny are impossible).
    assert float(match.group(1)) <= 2.0


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_unit_contract(name: str) -> None:
    unit = settings(name)
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert unit["WatchdogSec"] == ["20s"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["DynamicUser"] == ["yes"] and unit["ProtectSystem"] == ["strict"]
    assert unit["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert int(unit["LimitNOFILE"][0]) >= 65536
    assert unit["KillSignal"] == ["SIGTERM"] and unit["KillMode"] == ["mixed"]
    stop_timeout = int(unit["TimeoutStopSec"][0].rstrip("s"))
    if "frontdoor" not in name:
        # systemd must wait out the node's whole drain before SIGKILL.
        assert stop_timeout > 300


def test_sandbox_is_the_same_in_every_unit() -> None:
    blocks = {(UNITS / name).read_text().split(SANDBOX_MARK)[1].split("# Only binding")[0]
              for name in INSTANCES}
    assert len(blocks) == 1


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_exec_start_is_a_valid_regio_command(name: str) -> None:
    """The ExecStart line parses with the real CLI (the operator's $REGIO_ARGS aside)."""
    command = settings(name)["ExecStart"][0].replace("%i", INSTANCES[name])
    argv = [a for a in shlex.split(command) if a != "$REGIO_ARGS"]
    assert argv[0] == "/usr/local/bin/regio"
    args = build_parser().parse_args(argv[1:])
    assert args.command == name.split("-")[1].split("@")[0]
    assert args.config.startswith("/etc/regio/")
