"""``regio bench loss`` end to end, short: real router processes, real ICE/DTLS/SRTP, a real
impairment proxy; checks the document's shape and that loss was applied and repaired (never
a speed), and that the router's own downlink loss counters agree with what the subscriber
measured."""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.sfu.router_proc import REPO_ROOT, child_env


def test_one_case_json() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from control.cli import main; raise SystemExit(main())",
         "bench", "loss", "--loss", "8", "--rtt", "40", "--seconds", "4", "--subscribers", "1",
         "--json"],
        capture_output=True, text=True, timeout=240, env=child_env(), cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(result.stdout)
    [case] = document["cases"]
    assert case["loss_pct"] == 8 and case["loss_aware"] is True
    assert {"residual_loss", "recovery_p99_ms", "audio_residual_loss"} <= set(case)
    [sub] = case["subscribers"]
    assert sub["wire_loss"] > 0.02  # the proxy did drop packets
    assert sub["nacks"] > 0 and sub["recovered"] > 0  # and the router repaired some
    assert sub["frames_complete"] > 0
    # The router's own downlink loss counters (what Prometheus sees) over the same run: the
    # subscriber's NACKs counted each packet once, as the loss on the wire did, and its
    # receiver reports' lasting loss is what was left after repair.
    down = case["router_downlink"]
    assert down["expected"] > 0
    print(f"wire {sub['wire_loss']:.4f}, residual {case['residual_loss']:.4f}; router metric: "
          f"before {down['loss_before_recovery']:.4f}, after {down['loss_after_recovery']:.4f}")
    assert 0.5 * sub["wire_loss"] < down["loss_before_recovery"] < 2 * sub["wire_loss"]
    assert down["loss_after_recovery"] < down["loss_before_recovery"]
    assert down["loss_after_recovery"] <= case["residual_loss"] + 0.005
    assert document["loss_aware_off"]["loss_aware"] is False
    assert document["cpu_ratio_on_off"] is not None


def test_simulcast_case_json() -> None:
    """Three layers, the first subscriber capped for the middle third: both subscribers get
    layers, the capped one is seen on more than one (figures, not speeds, are the output)."""
    result = subprocess.run(
        [sys.executable, "-c", "from control.cli import main; raise SystemExit(main())",
         "bench", "loss", "--simulcast", "--seconds", "15", "--subscribers", "2", "--json"],
        capture_output=True, text=True, timeout=240, env=child_env(), cwd=REPO_ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    case = json.loads(result.stdout)["simulcast"]
    capped, clean = case["subscribers"]
    assert capped["capped"] and not clean["capped"]
    assert case["cap_kbps"] == 300 and case["forwarded"] > 0
    for sub in (capped, clean):
        assert sub["layers"] and sub["frames_complete"] > 0
        assert {layer for _, layer in sub["layers"]} <= {"q", "h", "f"}
    assert len({layer for _, layer in capped["layers"]}) >= 2


def test_layer_changes_ignore_late_repairs_of_the_old_layer() -> None:
    from benchmarks.loss.layers import layer_changes

    arrivals = {(1, n): n for n in range(10)}  # q
    arrivals |= {(3, n): 100 + n for n in range(10)}  # h from 100 ns on
    arrivals[(1, 10)] = 105  # a late repair of q in between
    assert layer_changes(arrivals) == [(0, "q"), (100, "h")]
