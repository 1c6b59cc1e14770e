"""``regio bench failover`` end to end on a namespaced cluster, small: what must hold whatever
the timings (residency kept, no room left on two routers, every figure reported)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_failover_keeps_residency_and_places_no_room_twice() -> None:
    done = subprocess.run([sys.executable, "-m", "control", "bench", "failover", "--json",
                           "--participants", "2", "--join-rate", "5"],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    for key in ("stop_assigning_s", "rejoin_p99_s", "failed_joins", "duplicate_placements"):
        assert key in figures, key
    assert figures["residency_violations"] == 0
    assert figures["chat_wrong_room"] == 0 and figures["chat_received"] > 0
    assert figures["duplicate_placements"] == 0
    assert figures["joins"] == 40  # 5/s for 8 s, every one accounted for
    assert 0 <= figures["failed_joins"] <= figures["joins"]
    assert figures["killed_router"].startswith("eu-central-router-")
    assert figures["etcd_leader_killed"] in ("etcd-1", "etcd-2", "etcd-3")
    # While cut off from etcd the region's router kept receiving media.
    assert figures["partition_media_packets"] > 0
    assert set(figures["verdicts"]) == {"stop_assigning_s", "rejoin_p99_s", "failed_joins",
                                        "duplicate_placements", "residency_violations",
                                        "chat_wrong_room"}
    assert "(c) healed" in done.stderr
