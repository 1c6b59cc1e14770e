"""``regio cluster up --hosts`` end to end: nodes on their own hosts and addresses, a
three-member etcd, joins through the TLS front door, partition/heal, kill, and nothing left
behind. One test on purpose: a cluster start is the expensive part."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from benchmarks.frontdoor_cluster import spawn
from control import netns

TOPOLOGY = """
[jurisdictions.EEA]
restricted = true

[jurisdictions.US]
restricted = false
countries = ["US"]

[regions.eu-central]
jurisdiction = "EEA"
location = [50.11, 8.68]
routers = 1
turns = 1

[regions.us-east]
jurisdiction = "US"
location = [39.04, -77.49]
routers = 1
turns = 1
"""
REGIO = [sys.executable, "-m", "control"]
DE_CLIENT, US_CLIENT = "5.9.0.1", "8.8.8.8"  # Hetzner (DE) and Google (US) in the GeoIP data


def regio(state: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [*REGIO, "cluster", *args[:1], "--state-dir", str(state), *args[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def on_ops(state: Path, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return regio(state, "exec", "--", *cmd, timeout=timeout)


JOIN = ("import json, ssl, sys, trio\n"
        "from benchmarks.failover.participant import join\n"
        "tls = ssl.create_default_context(cafile=sys.argv[1])\n"
        "print(json.dumps(trio.run(join, sys.argv[2], sys.argv[3], sys.argv[4], tls)))\n")


def join(state: Path, ready: dict[str, object], room: str, client: str) -> dict[str, object]:
    """A join from the ops host, speaking for ``client`` (the front door trusts ops)."""
    done = on_ops(state, sys.executable, "-c", JOIN, str(ready["ca"]), str(ready["frontdoor"]),
                  room, client)
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


def reachable(state: Path, address: str, port: int) -> bool:
    code = (f"import socket; s = socket.socket(); s.settimeout(3)\n"
            f"try:\n s.connect(({address!r}, {port})); print('open')\n"
            f"except OSError: print('closed')")
    return on_ops(state, sys.executable, "-c", code).stdout.strip() == "open"


def test_hosts_cluster_end_to_end(tmp_path: Path) -> None:
    topology = tmp_path / "topology.toml"
    topology.write_text(TOPOLOGY)
    state = tmp_path / "state"
    up = spawn("up", [*REGIO, "cluster", "up", "--hosts", "--json", "--topology", str(topology),
                      "--state-dir", str(state), "--drain-deadline", "5"], tmp_path / "logs")
    try:
        ready = json.loads(up.wait_line('{"event": "ready"', timeout=240))
        hosts: dict[str, str] = ready["hosts"]  # type: ignore[assignment]
        assert set(hosts) == {"eu-central", "us-east", "etcd-1", "etcd-2", "etcd-3",
                              "frontdoor", "ops"}
        assert len(set(hosts.values())) == len(hosts)
        assert all(url.split("//")[1].split(":")[0] in (hosts["etcd-1"], hosts["etcd-2"],
                                                         hosts["etcd-3"])
                   for url in str(ready["etcd"]).split(","))
        assert ready["frontdoor"] == f"https://{hosts['frontdoor']}:8443"

        # Every node registered under its own host's address.
        status = on_ops(state, "sh", "-c", f"{' '.join(REGIO)} cluster status --json "
                        "--etcd $REGIO_ETCD")
        regions = json.loads(status.stdout)["regions"]
        for region in ("eu-central", "us-east"):
            for node in regions[region]["nodes"]:
                assert {a["host"] for a in node["addresses"]} == {hosts[region]}, node

        # The TLS front door places a German client on the EEA host, an American one in the US.
        de = join(state, ready, "hosted-eu", DE_CLIENT)
        assert de["region"] == "eu-central", de
        router: dict[str, str] = de["router"]  # type: ignore[assignment]
        assert router["signaling_url"].startswith(f"wss://{hosts['eu-central']}:")
        us = join(state, ready, "hosted-us", US_CLIENT)
        assert us["region"] == "us-east", us

        # Partition ops from eu-central: its signaling port goes dark, heal brings it back.
        port = int(router["signaling_url"].split(":")[2].split("/")[0])
        assert reachable(state, hosts["eu-central"], port)
        assert regio(state, "partition", "ops", "eu-central").returncode == 0
        assert not reachable(state, hosts["eu-central"], port)
        assert reachable(state, hosts["us-east"], 7001)  # other links untouched
        assert regio(state, "heal", "ops", "eu-central").returncode == 0
        assert reachable(state, hosts["eu-central"], port)

        # kill: SIGKILL, seen by `up`; a second kill and unknown names are clear errors.
        killed = regio(state, "kill", "us-east-router-1")
        assert killed.returncode == 0, killed.stderr
        exited = json.loads(up.wait_line('{"event": "exited"', timeout=60))
        assert exited == {"event": "exited", "node": "us-east-router-1", "code": -9}
        again = regio(state, "kill", "us-east-router-1")
        assert again.returncode == 2 and "not running" in again.stderr
        unknown = regio(state, "partition", "ops", "mars")
        assert unknown.returncode == 2 and "no host or group 'mars'" in unknown.stderr
    finally:
        up.popen.send_signal(signal.SIGINT)
        stopped = up.wait_line('{"event": "stopped"', timeout=120)
        try:
            up.popen.wait(timeout=60)  # the hosts are deleted after the nodes stop
        finally:
            up.stop()
    assert stopped
    assert up.popen.returncode == 0
    assert not (state / "cluster.json").exists()
    network = str(ready["network"])
    assert network.startswith("rg-")
    assert not [ns for ns in netns.list_namespaces() if ns.startswith(f"{network}-")]


def test_hosts_cluster_needs_root(tmp_path: Path) -> None:
    topology = Path(__file__).resolve().parents[2] / "infra" / "local" / "topology.toml"
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           *REGIO, "cluster", "up", "--hosts", "--topology", str(topology),
                           "--state-dir", str(tmp_path / "s")],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 2
    assert "need root" in done.stderr and "Traceback" not in done.stderr
