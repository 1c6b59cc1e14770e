"""The cluster CA: key file private, node certificates verified, every refusal precise; the
`regio secrets ca|issue` commands."""

from __future__ import annotations

import datetime
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from control.cluster_ca import (
    CertificateRefused,
    create_ca,
    issue_node_certificate,
    load_ca,
    load_certificate,
    verify_node_certificate,
)
from tests.control.conftest import python_env
from tests.trunk.routers import REPO


def test_ca_key_is_private_and_certificates_verify(tmp_path: Path) -> None:
    assert create_ca(tmp_path / "ca")
    assert not create_ca(tmp_path / "ca")  # idempotent, keeps the existing CA
    assert stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o600
    creds = issue_node_certificate(tmp_path / "ca", "router-1", tmp_path / "out")
    assert stat.S_IMODE(creds.key.stat().st_mode) == 0o600
    ca, _ = load_ca(tmp_path / "ca")
    cert = load_certificate(creds.cert)
    assert verify_node_certificate(cert, ca) == "router-1"
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=400)
    with pytest.raises(CertificateRefused, match="expired"):
        verify_node_certificate(cert, ca, later)
    with pytest.raises(CertificateRefused) as refused:
        verify_node_certificate(ca, ca)  # the CA itself names no node
    assert refused.value.reason in ("not_cluster_ca", "no_node_id")
    create_ca(tmp_path / "other")
    other, _ = load_ca(tmp_path / "other")
    with pytest.raises(CertificateRefused) as refused:
        verify_node_certificate(cert, other)
    assert refused.value.reason == "not_cluster_ca"


def test_cli_creates_the_ca_and_issues(tmp_path: Path) -> None:
    def regio(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "control", *args], capture_output=True,
                              text=True, env=python_env(), cwd=str(REPO), timeout=60)

    done = regio("secrets", "ca", "--dir", str(tmp_path / "ca"))
    assert done.returncode == 0 and "created" in done.stdout
    done = regio("secrets", "issue", "--dir", str(tmp_path / "ca"), "--node", "rt-1")
    assert done.returncode == 0 and "--trunk-cert" in done.stdout
    assert (tmp_path / "ca" / "nodes" / "rt-1.pem").exists()
    bad = regio("secrets", "issue", "--dir", str(tmp_path / "ca"), "--node", "a/b")
    assert bad.returncode != 0 and "--node" in bad.stderr
    missing = regio("secrets", "issue", "--dir", str(tmp_path / "none"), "--node", "x")
    assert missing.returncode != 0 and "unusable" in missing.stderr
