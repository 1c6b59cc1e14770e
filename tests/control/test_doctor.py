"""``regio doctor``: the verdicts from numbers, and the probes against real sockets, a real
etcd and real certificate files."""

from __future__ import annotations

import datetime
import json
import socket
from pathlib import Path

import pytest
import trio
from hypothesis import assume, given
from hypothesis import strategies as st

from control import doctor
from control.cli import main
from control.doctor import Listener
from control.labpki import issue, make_ca, write_cert
from control.localetcd import LocalEtcd

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)


@given(st.floats(-30, 30), st.floats(0, 2))
def test_clock_verdict_allows_for_date_resolution_and_round_trip(skew: float, rtt: float) -> None:
    assume(abs(abs(skew) - (0.5 + rtt / 2) - 1.0) > 1e-6)  # not on the float boundary
    server = 1_800_000_000.0
    before = server + 0.5 + skew - rtt / 2  # midpoint = middle of the server's second + skew
    finding = doctor.judge_clock(before, before + rtt, server, max_skew=1.0)
    slack = 0.5 + rtt / 2
    assert finding.status == ("fail" if abs(skew) - slack > 1.0 else "ok")
    assert (finding.fix != "") == (finding.status == "fail")


def test_geoip_certificate_and_buffer_verdicts() -> None:
    now = NOW.timestamp()
    assert doctor.judge_geoip("db.mmdb", int(now - 10 * 86400), now, 35).status == "ok"
    old = doctor.judge_geoip("db.mmdb", int(now - 90 * 86400), now, 35)
    assert old.status == "warn" and "regio geo update" in old.fix and "90 days" in old.detail
    assert doctor.judge_geoip("db.mmdb", None, now, 35).status == "fail"
    soon = doctor.judge_certificate("c.pem", NOW + datetime.timedelta(days=3), NOW, 14)
    assert soon.status == "warn" and "renew" in soon.fix
    gone = doctor.judge_certificate("c.pem", NOW - datetime.timedelta(days=2), NOW, 14)
    assert gone.status == "fail" and "expired 2 days ago" in gone.detail
    small = doctor.judge_udp_buffers(212992, 212992, 1 << 20)
    assert small.status == "warn" and "net.core.rmem_max=1048576" in small.fix
    assert doctor.judge_udp_buffers(4 << 20, 4 << 20, 1 << 20).status == "ok"
    assert doctor.exit_status([small]) == 0 and doctor.exit_status([small], strict=True) == 1
    assert doctor.exit_status([gone, small]) == 1


def test_port_probe_on_real_sockets() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        taken = doctor.probe_port(Listener("udp", "127.0.0.1", port, "[router] udp_port"))
    assert taken.status == "fail" and "in use" in taken.detail and "ss -ulpn" in taken.fix
    free = doctor.probe_port(Listener("udp", "127.0.0.1", port, "x"))
    assert free.status == "ok"
    foreign = doctor.probe_port(Listener("tcp", "192.0.2.1", 8443, "[frontdoor] listen"))
    assert foreign.status == "fail" and "not an address of this machine" in foreign.detail


def test_listeners_from_a_node_config() -> None:
    document = {"router": {"host": "127.0.0.1", "port": 7100},
                "turn": {"listen": ["127.0.0.1:3478"], "metrics": "127.0.0.1:9100"},
                "frontdoor": {"listen": "[::1]:8443"}}
    got = {(x.protocol, x.host, x.port) for x in doctor.listeners_from_config(document)}
    assert got == {("udp", "127.0.0.1", 7100), ("tcp", "127.0.0.1", 7101),
                   ("tcp", "127.0.0.1", 7102), ("udp", "127.0.0.1", 3478),
                   ("tcp", "127.0.0.1", 9100), ("tcp", "::1", 8443)}


@pytest.mark.etcd
def test_doctor_command_against_real_etcd(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    ca = make_ca()
    _, expired = issue(ca, "old", days=-1, from_days=-30)
    old_cert = write_cert(tmp_path / "old.pem", expired)
    etcd = LocalEtcd(1, base_dir=tmp_path / "etcd")
    trio.run(etcd.start)
    try:
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            held.listen()
            port = held.getsockname()[1]
            status = main(["doctor", "--json", "--etcd", etcd.urls, "--cert", old_cert,
                           "--port", f"tcp:127.0.0.1:{port}"])
    finally:
        etcd.stop()
    report = json.loads(capsys.readouterr().out)
    by_check = {f["check"]: f for f in report["findings"]}
    assert status == 1 and report["status"] == 1
    assert by_check["etcd"]["status"] == "ok"
    assert by_check["clock skew"]["status"] == "ok"  # same machine, same clock
    assert by_check["certificate old.pem"]["status"] == "fail"
    assert by_check[f"port tcp/127.0.0.1:{port}"]["status"] == "fail"
    assert by_check["geoip database"]["status"] in ("ok", "warn")


def test_doctor_reports_unreachable_etcd_with_a_fix(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    status = main(["doctor", "--etcd", f"http://127.0.0.1:{port}", "--etcd-timeout", "0.5"])
    out = capsys.readouterr().out
    assert status == 1
    assert "[FAIL] etcd:" in out and "fix: check --etcd" in out
