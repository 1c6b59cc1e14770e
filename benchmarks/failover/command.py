"""``regio bench failover``: what a dying router, a dying etcd leader and a region cut off from
etcd cost, measured on a namespaced cluster (``regio cluster up --hosts``; needs root).

The command starts the cluster as a subprocess, moves itself into the cluster's ops host and
runs :mod:`benchmarks.failover.scenario`; the cluster is stopped (and every host deleted)
whatever happens."""

from __future__ import annotations

import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.failover.figures import TARGETS

TOPOLOGY = """# regio bench failover: two routers in eu-central so its clients have somewhere to go
[jurisdictions.EEA]
restricted = true

[jurisdictions.US]
restricted = false
countries = ["US"]

[regions.eu-central]
jurisdiction = "EEA"
location = [50.11, 8.68]
routers = 2
turns = 1

[regions.eu-north]
jurisdiction = "EEA"
location = [59.33, 18.07]
routers = 1
turns = 1

[regions.us-east]
jurisdiction = "US"
location = [39.04, -77.49]
routers = 1
turns = 1
"""
ROWS = [
    ("stop_assigning_s", "(a) s until the front door stops assigning a SIGKILLed router"),
    ("rejoin_p99_s", "(a) s until its participants are back via another router, p99"),
    ("failed_joins", "(b) joins failing after client retry while the etcd leader dies"),
    ("duplicate_placements", "(c) rooms left on two routers after a region/etcd partition"),
    ("residency_violations", "EEA clients assigned or connected outside the EEA"),
    ("chat_wrong_room", "chat lines delivered to another room than the sender's"),
]


def add_command(kinds: Any) -> None:
    parser = kinds.add_parser(
        "failover",
        help="SIGKILL a router, kill the etcd leader, partition a region from etcd "
        "(namespaced cluster; root)",
        description="Starts `regio cluster up --hosts` and measures: (a) seconds until the "
        "front door stops assigning a SIGKILLed router (target <= 2) and until its "
        "participants are back through another allowed router (p99 target <= 5); (b) joins "
        "failing after client retry while the etcd leader is killed (target 0); (c) rooms "
        "placed twice after a region is partitioned from etcd and healed (target 0). "
        "Residency is checked throughout.",
    )
    parser.add_argument("--participants", type=int, default=4,
                        help="participants in the rooms of (a) and (c) (default 4)")
    parser.add_argument("--join-rate", type=float, default=10.0,
                        help="joins per second in (b) (default 10)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.set_defaults(handler=run_command)


def measure(participants: int, join_rate: float, progress: Any) -> dict[str, Any]:
    """Start a hosts cluster, run the scenarios from its ops host, stop it."""
    from benchmarks.failover.scenario import FailoverConfig, run
    from benchmarks.frontdoor_cluster import spawn
    from control.cluster_hosts import read_state
    from control.netns import enter_host, leave_host

    with tempfile.TemporaryDirectory(prefix="regio-failover-") as tmp:
        work = Path(tmp)
        (work / "topology.toml").write_text(TOPOLOGY)
        up = spawn("cluster-up", [sys.executable, "-m", "control", "cluster", "up", "--hosts",
                                  "--json", "--topology", str(work / "topology.toml"),
                                  "--state-dir", str(work / "state"), "--drain-deadline", "3"],
                   work / "logs")
        try:
            up.wait_line('{"event": "ready"', timeout=300)
            state = read_state(work / "state")
            progress(f"cluster ready on {state['network']['subnet']}")
            machine_ns = enter_host(f"{state['network']['name']}-ops")
            try:
                figures = run(state, FailoverConfig(participants=participants,
                                                    join_rate=join_rate), progress)
            finally:
                leave_host(machine_ns)  # stopping the cluster kills what is left in its hosts
        finally:
            up.popen.send_signal(signal.SIGINT)
            try:
                up.popen.wait(timeout=120)
            finally:
                up.stop()
    return figures


def run_command(args: Any) -> int:
    from benchmarks import machine, results
    from control.clierror import CliError
    from control.netns import NetnsError, require_root

    if args.participants < 1 or args.participants > 50 or args.join_rate <= 0:
        raise CliError("--participants must be 1-50 and --join-rate positive")
    try:
        require_root("`regio bench failover` (a namespaced cluster)")
    except NetnsError as exc:
        raise CliError(str(exc)) from None

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        figures = measure(args.participants, args.join_rate, progress)
    except (RuntimeError, OSError) as exc:
        raise CliError(str(exc)) from None
    if args.json:
        json.dump({"machine": machine.describe(), **figures}, sys.stdout, indent=2)
        print()
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="regio bench failover (namespaced cluster)")
        for column in ("figure", "value", "target", "verdict"):
            table.add_column(column)
        for key, label in ROWS:
            table.add_row(label, str(figures.get(key)), f"<= {TARGETS[key]}",
                          figures["verdicts"].get(key, ""))
        Console(width=max(Console().width, 120)).print(table)
        for key in ("chat_received", "rejoin_p50_s", "not_rejoined", "joins", "retried_joins",
                    "join_p99_s", "partition_lease_lost_s", "partition_media_packets",
                    "reregister_s", "rooms_end", "seconds"):
            print(f"  {key}: {figures.get(key)}")
    if args.record:
        results.record_section(
            "Failover", f"regio bench failover --participants {args.participants} "
            f"--join-rate {args.join_rate:g}", ["figure", "value", "target", "verdict"],
            [(label, figures.get(key), f"<= {TARGETS[key]}", figures["verdicts"].get(key))
             for key, label in ROWS],
            notes=f"namespaced cluster (regio cluster up --hosts) on one machine; "
            f"{machine.load_note()}; "
            f"killed router {figures.get('killed_router')}, etcd leader "
            f"{figures.get('etcd_leader_killed')}; {figures.get('joins')} joins in (b), "
            f"{figures.get('retried_joins')} retried; partition: lease lost after "
            f"{figures.get('partition_lease_lost_s')} s, router received "
            f"{figures.get('partition_media_packets')} media packets while cut off, "
            f"registered again {figures.get('reregister_s')} s after heal; rejoin p50 "
            f"{figures.get('rejoin_p50_s')} s, {figures.get('not_rejoined')} participants not "
            f"back; join p99 {figures.get('join_p99_s')} s including retries",
        )
    return 0
