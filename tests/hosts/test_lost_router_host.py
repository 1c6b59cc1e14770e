"""Issue 15 item 7 end to end: a router whose host is lost (its packets dropped: nothing
answers, no RST comes) leaves the front door's candidates within 2 s, and every join of its
room meanwhile gets 200, then the surviving router.

Real etcd, two real ``regio router`` processes in eu-central (10 s leases), a real ``regio
frontdoor`` with its default probes. The loss is an nftables rule dropping every packet to
the victim router's signaling port (a table ``hardc-<random>`` in an ``inet`` family, deleted
afterwards): the front door's probes get no SYN-ACK, as from a powered-off host, while the
victim's process, and its etcd lease, live on."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from benchmarks.frontdoor_cluster import LocalFrontdoorCluster
from tests.frontdoor.conftest import COUNTRIES, find_addresses
from tests.frontdoor.test_failover import joins_until_moved, placed_pair

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

BOUND = 2.0
"""Seconds within which the lost router must leave the candidates (issue 15 item 7)."""


def _nft(script: str) -> None:
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True, timeout=10)


def test_lost_router_host_leaves_candidates_within_2s(tmp_path: Path) -> None:
    cluster = LocalFrontdoorCluster(tmp_path)
    table = f"hardc-{secrets.token_hex(4)}"
    cluster.start()
    try:
        german = find_addresses(COUNTRIES)["DE"][0]
        hostport, victim, survivor = placed_pair(cluster, "lost", "lost-host", german)
        port = urlsplit(victim.signaling_url).port
        _nft(f"add table inet {table}\n"
             f"add chain inet {table} input {{ type filter hook input priority -10; }}\n"
             f"add rule inet {table} input ip daddr 127.0.0.1 tcp dport {port} drop\n")
        answers = joins_until_moved(hostport, "lost-host", german, survivor, time.monotonic(),
                                    BOUND)
        print(f"lost host: joins moved to the surviving router {answers[-1][0]:.2f} s after "
              f"the drop ({len(answers)} joins, all 200)")
        assert victim.proc.popen.poll() is None, "the victim's process lives: only its host is cut"
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True,
                       timeout=10)
        cluster.stop()
