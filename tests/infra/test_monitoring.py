"""Prometheus rules and configuration in infra/monitoring/, checked by Debian's promtool: syntax
(``check rules``, ``check config``), the alert unit tests with input series (``test rules``),
and that every metric the rules read is one the code really exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "infra" / "monitoring"
RULES = sorted((MONITORING / "rules").glob("*.yml"))
CODE = ("router", "turn", "geo", "control")
#: Series the nodes do not define themselves: Prometheus' own and other projects' exporters.
FOREIGN = {"up", "process_cpu_seconds_total", "etcd_server_has_leader"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120,
                          cwd=MONITORING)


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_is_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass() -> None:
    tests = sorted(str(p) for p in (MONITORING / "tests").glob("*.test.yml"))
    assert tests
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def exported_names() -> set[str]:
    """Metric family names in the code, in their exposition form (counters get ``_total``)."""
    names = set()
    for package in CODE:
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text()
            for match in re.finditer(r'"(regio_[a-z_]+)"', text):
                name = match.group(1)
                names |= {name, f"{name}_total", f"{name}_bucket", f"{name}_sum",
                          f"{name}_count"}
    # The loss-aware link figures are named from tables (regio_router_link_<key>).
    from router.metrics import _LINK_COUNTERS, _LINK_GAUGES

    names |= {f"regio_router_link_{name}" for _, name, _ in _LINK_GAUGES}
    names |= {f"regio_router_link_{key}_total" for key, _ in _LINK_COUNTERS}
    return names


def test_rules_read_only_metrics_the_code_exports() -> None:
    text = "\n".join(p.read_text() for p in RULES)
    # Metric names, not the level:name:operation names of recording rules.
    metrics = set(re.findall(r"(?<![:\w])((?:regio|process|etcd)_[a-z_]+|up)(?=[{\[ )\n])", text))
    unknown = metrics - exported_names() - FOREIGN
    assert not unknown, f"rules read metrics nothing exports: {sorted(unknown)}"
    assert {"regio_frontdoor_residency_violations_total", "regio_node_lease_losses_total",
            "regio_turn_allocations_refused_total", "regio_router_srtp_failures_total",
            "regio_turn_allocation_quota", "regio_router_link_nack_given_up_total",
            "regio_trunk_srtp_auth_failures_total",
            "regio_router_downlink_lost_packets_total"} <= metrics


def test_dashboard_queries_are_valid_promql_over_known_series(tmp_path: Path) -> None:
    """Every panel query of the Grafana dashboard parses (promtool checks it as a recording
    rule) and reads only exported metrics or the recording rules' series."""
    dashboard = json.loads((MONITORING / "grafana" / "regio-dashboard.json").read_text())
    exprs = [t["expr"].replace("$region", ".*") for p in dashboard["panels"]
             for t in p["targets"]]
    assert len(exprs) >= 12
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    recorded = {m for p in RULES for m in re.findall(r"record: (\S+)", p.read_text())}
    text = "\n".join(exprs)
    used = set(re.findall(r"(?<![\w:])([a-z_]+:[a-z_0-9:]+)", text))
    assert used <= recorded, used - recorded
    metrics = set(re.findall(r"(?<![:\w])((?:regio|process|etcd)_[a-z_]+)(?=[{\[ )\n])", text))
    assert metrics <= exported_names() | FOREIGN
    titles = {p["title"] for p in dashboard["panels"]}
    assert {"Participants", "Forwarded packets/s", "Router CPU per forwarded packet",
            "Loss before and after recovery (publisher uplinks)",
            "Loss before and after recovery (subscriber downlinks)", "Trunk paths"} <= titles
