"""``regio bench trunk`` for real on namespace hosts (root; CI runs as root), with loss on the
relay leg too (repaired hop by hop by the relay), and its refusal without root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.control.conftest import python_env
from tests.trunk.routers import REPO


def regio(*args: str, prefix: tuple[str, ...] = (), timeout: float = 600
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "control", *args], capture_output=True,
                          text=True, env=python_env(), cwd=str(REPO), timeout=timeout)


@pytest.mark.etcd
@pytest.mark.slow
def test_bench_trunk_reports_every_figure() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root: the namespace bench must run")
        pytest.skip("needs root (network namespaces)")
    done = regio("bench", "trunk", "--json", "--seconds", "12", "--warmup", "4", "--loss", "10",
                 "--relay-loss", "5")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for key in ("delivered_loss", "direct_only_loss", "switch_s", "relay_p99_ms"):
        assert key in report
    assert 0.0 <= report["delivered_loss"] <= 1.0 and 0.0 <= report["direct_only_loss"] <= 1.0
    assert report["switch_s"] is not None and report["switch_s"] >= 0  # the path did change
    assert report["packets_in_loss_window"] > 0
    # 5 % of the media is lost on the relay leg r3 -> r2 once the flow goes through r3: r2
    # NACKs r3, which re-sends from its trunk cache, so the flow loses far less than 5 %
    assert report["hop_nacks_to_relay"] > 0 and report["relay_retransmits"] > 0
    assert report["steady_relay_loss"] is not None and report["steady_relay_loss"] < 0.025


def test_bench_trunk_without_root_exits_2() -> None:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root with util-linux's setpriv: this check must run")
        pytest.skip("needs root and setpriv to drop to an unprivileged user")
    done = regio("bench", "trunk", "--json", prefix=(setpriv, "--reuid=65534", "--regid=65534",
                                                      "--clear-groups"), timeout=120)
    assert done.returncode == 2
    assert "root" in done.stderr and done.stdout == ""
