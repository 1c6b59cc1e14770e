"""``regio bench trunk``: three routers on three namespace hosts, loss on the direct link.

Hosts ``ctl`` (etcd and the measuring participants), ``r1``/``r2``/``r3`` (one router each, own
address, veth to the lab bridge). After a warm-up, nftables drops ``--loss`` percent of the
packets between r1 and r2 each way (``numgen random``, control/netns.py). The publisher is on
r1, the subscriber on r2; r3 is the only relay candidate. The same run then repeats with
routers that never relay (``--trunk-paths direct``) and the loss on from the start. From the
participants' packet records: delivered loss of both, seconds from loss onset to r1's path
change (its metrics, polled every 100 ms), latency p50/p99 direct (before the loss) and through
the relay (after the switch), and the routers' CPU per delivered packet (all three routers,
less their idle upkeep measured for 3 s before the media starts).

``relay_loss`` also drops that share of media-sized packets (not probes, so path choice is
unchanged) from r3 to r2 all the time: the relayed flow then loses packets on the relay leg,
which r2 NACKs to r3 and r3 re-sends from its per-trunk cache (``relay_retransmits``; the
source r1 re-sending is ``source_retransmits``).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procstat import process_tree_cpu_seconds
from control.cluster_ca import create_ca, issue_node_certificate
from control.localetcd import find_etcd_binary
from control.netns import Network, network, require_root
from control.secretbox import ENV_VAR, write_key_file

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = """
[jurisdictions.EEA]
restricted = true

[regions.eu-a]
jurisdiction = "EEA"
location = [50.1, 8.7]
routers = 0
turns = 0

[regions.eu-b]
jurisdiction = "EEA"
location = [59.3, 18.1]
routers = 0
turns = 0

[regions.eu-c]
jurisdiction = "EEA"
location = [48.9, 2.3]
routers = 0
turns = 0
"""
REGIONS = {"1": "eu-a", "2": "eu-b", "3": "eu-c"}
IDLE_SECONDS = 3.0
_SECRETS_KEY = ""
"""The lab's secrets key file (etcd secrets are sealed with it; it never enters etcd)."""


class BenchError(RuntimeError):
    """The lab could not be built or a participant failed."""


@dataclass(frozen=True, slots=True)
class TrunkBenchSpec:
    loss: int = 10
    seconds: float = 20.0
    warmup: float = 5.0
    pps: float = 200.0
    size: int = 1000
    relay_loss: int = 0


MEDIA_BYTES = 200
"""IP packets at least this long count as media for ``relay_loss`` (probes are ~100 bytes)."""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    if _SECRETS_KEY:
        env[ENV_VAR] = _SECRETS_KEY
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _readline(process: subprocess.Popen[bytes], timeout: float, what: str) -> dict[str, Any]:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    fd = process.stdout.fileno()
    while b"\n" not in buffer:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError(f"{what}: no output within {timeout:g} s")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise BenchError(f"{what} exited (code {process.poll()})")
            buffer += chunk
    line, _, rest = buffer.partition(b"\n")
    if rest:
        raise BenchError(f"{what}: unexpected output")
    return dict(json.loads(line))


def _read_rest(process: subprocess.Popen[bytes], timeout: float, what: str) -> dict[str, Any]:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what} did not finish within {timeout:g} s") from None
    if process.returncode != 0:
        raise BenchError(f"{what} failed with code {process.returncode}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


class Lab:
    """The namespace network, etcd and the routers of one phase."""

    def __init__(self, net: Network, work: Path) -> None:
        global _SECRETS_KEY
        _SECRETS_KEY = str(write_key_file(work / "secrets.key"))
        self.net = net
        self.work = work
        self.ctl = net.host("ctl").address
        self.etcd_url = f"http://{self.ctl}:2379"
        self.routers: dict[str, tuple[subprocess.Popen[bytes], dict[str, Any]]] = {}
        self.idle_cpu_per_s = 0.0

    def start_etcd(self) -> None:
        peer = f"http://{self.ctl}:2380"
        log = open(self.work / "etcd.log", "ab")  # noqa: SIM115 - closed with the process
        self.net.popen("ctl", [find_etcd_binary(None), "--name", "m1",
                               "--data-dir", str(self.work / "etcd"),
                               "--listen-client-urls", self.etcd_url,
                               "--advertise-client-urls", self.etcd_url,
                               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                               "--initial-cluster", f"m1={peer}"],
                       stdout=log, stderr=log)
        topology = self.work / "topology.toml"
        topology.write_text(TOPOLOGY)
        command = self.net.host("ctl").command(
            [sys.executable, "-m", "control", "cluster", "init", "--etcd", self.etcd_url,
             "--topology", str(topology)])
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(command, capture_output=True, env=_env(), timeout=60,
                                  check=False)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"etcd did not come up: {done.stderr.decode()[-300:]}")
            time.sleep(0.5)

    def start_routers(self, prefix: str, paths: str) -> None:
        ca = self.work / "ca"
        create_ca(ca)
        for index, region in REGIONS.items():
            node = f"{prefix}{index}"
            host = f"r{index}"
            address = self.net.host(host).address
            creds = issue_node_certificate(ca, node, ca / "nodes", addresses=[address])
            log = open(self.work / f"{node}.log", "ab")  # noqa: SIM115 - closed with the process
            process = self.net.popen(host, [
                sys.executable, "-m", "control", "router", "--etcd", self.etcd_url,
                "--region", region, "--node-id", node, "--listen", address,
                "--udp-port", "0", "--signaling", f"{address}:0", "--metrics", f"{address}:0",
                "--lease-ttl", "3", "--trunk-cert", str(creds.cert), "--trunk-key",
                str(creds.key), "--trunk-ca", str(creds.ca), "--trunk-paths", paths,
                "--tls-cert", str(creds.cert), "--tls-key", str(creds.key),
            ], stdout=subprocess.PIPE, stderr=log, env=_env())
            try:
                ready = _readline(process, 60, f"router {node}")
            except BenchError as exc:
                tail = (self.work / f"{node}.log").read_text(errors="replace")[-800:]
                raise BenchError(f"{exc}: {tail}") from None
            self.routers[node] = (process, ready)

    def stop_routers(self) -> None:
        for process, _ in self.routers.values():
            self.net.stop(process.pid)
        self.routers.clear()

    def cpu_seconds(self) -> float:
        total = 0.0
        for process, _ in self.routers.values():
            with contextlib.suppress(OSError):
                total += process_tree_cpu_seconds(process.pid)
        return total

    def measure(self, prefix: str, room: str, spec: TrunkBenchSpec,
                loss_after: float | None) -> tuple[dict[str, Any], int | None, float]:
        """One client run; ``loss_after``: seconds into sending when the loss starts (None:
        already on). Returns the client's record, the loss onset and router CPU seconds."""
        pub, sub = self.routers[f"{prefix}1"][1], self.routers[f"{prefix}2"][1]
        if spec.relay_loss:
            self.net.set_loss("r3", "r2", spec.relay_loss, both_ways=False,
                              min_bytes=MEDIA_BYTES)
        idle_from = self.cpu_seconds()
        time.sleep(IDLE_SECONDS)  # the routers' own upkeep (trunks, probes, etcd), no media
        self.idle_cpu_per_s = (self.cpu_seconds() - idle_from) / IDLE_SECONDS
        client = self.net.popen("ctl", [
            sys.executable, "-m", "benchmarks.trunk.client", "--etcd", self.etcd_url,
            "--pub", pub["signaling"], "--sub", sub["signaling"], "--pub-router", f"{prefix}1",
            "--sub-router", f"{prefix}2", "--metrics", pub["metrics"], "--room", room,
            "--bind", self.ctl, "--ca", str(self.work / "ca" / "ca.pem"),
            "--pps", str(spec.pps), "--size", str(spec.size),
            "--seconds", str(spec.seconds),
            *(f"--scrape={node}={ready['metrics']}" for node, (_, ready)
              in sorted(self.routers.items()))], stdout=subprocess.PIPE, env=_env())
        started = _readline(client, 90, "the measuring participants")
        cpu_before = self.cpu_seconds()
        clock_before = time.monotonic()
        onset: int | None = None
        if loss_after is not None:
            wait = (started["start_ns"] + int(loss_after * 1e9) - time.monotonic_ns()) / 1e9
            time.sleep(max(0.0, wait))
            self.net.set_loss("r1", "r2", spec.loss)
            onset = time.monotonic_ns()
        record = _read_rest(client, spec.seconds + 60, "the measuring participants")
        busy = self.cpu_seconds() - cpu_before
        return record, onset, busy - self.idle_cpu_per_s * (time.monotonic() - clock_before)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _loss(record: dict[str, Any], since_ns: int) -> tuple[float, int]:
    interval_ns = record["interval"] * 1e9
    first = max(0, int((since_ns - record["start_ns"]) / interval_ns))
    wanted = set(range(first, record["sent"]))
    got = {n for n, _, _ in record["received"] if n in wanted}
    return (1 - len(got) / len(wanted) if wanted else 0.0), len(wanted)


def analyse(aware: dict[str, Any], onset: int, direct: dict[str, Any],
            cpu_s: float) -> dict[str, Any]:
    delivered_loss, window = _loss(aware, onset)
    direct_loss, direct_window = _loss(direct, direct["start_ns"])
    switch_ns = next((t for t, relayed, dual in aware["paths"]
                      if t >= onset and (relayed > 0 or dual > 0)), None)
    relay_from = next((t for t, relayed, dual in aware["paths"]
                       if t >= onset and relayed > 0 and dual == 0), None)
    before = [(r - s) / 1e6 for _, s, r in aware["received"]
              if aware["start_ns"] + 1e9 <= s < onset]
    after = [(r - s) / 1e6 for _, s, r in aware["received"]
             if relay_from is not None and s >= relay_from + 5e8]
    steady_loss = (_loss(aware, int(relay_from + 5e8))[0] if relay_from is not None else None)
    p99_direct, p99_relay = _percentile(before, 0.99), _percentile(after, 0.99)
    delivered = len({n for n, _, _ in aware["received"]})
    return {
        "delivered_loss": round(delivered_loss, 5),
        "direct_only_loss": round(direct_loss, 5),
        "steady_relay_loss": None if steady_loss is None else round(steady_loss, 5),
        "switch_s": None if switch_ns is None else round((switch_ns - onset) / 1e9, 3),
        "direct_p50_ms": _round(_percentile(before, 0.5)),
        "direct_p99_ms": _round(p99_direct),
        "relay_p50_ms": _round(_percentile(after, 0.5)),
        "relay_p99_total_ms": _round(p99_relay),
        "relay_p99_ms": (None if p99_direct is None or p99_relay is None
                         else round(p99_relay - p99_direct, 3)),
        "router_cpu_us_per_packet": round(cpu_s * 1e6 / delivered, 1) if delivered else None,
        "router_idle_cpu_percent": None,
        "packets_in_loss_window": window,
        "packets_direct_only": direct_window,
        **_repairs(aware.get("repairs", {})),
    }


def _repairs(repairs: dict[str, dict[str, dict[str, float]]]) -> dict[str, int]:
    """Re-sends from the trunk caches: by the relay (r3) to the subscriber's router (r2), and
    by the source (r1) to anyone; NACKs r2 sent to the relay."""
    def counter(index: str, name: str, peer: str | None) -> int:
        values = next((v for node, v in repairs.items() if node.endswith(index)), {})
        per_peer = values.get(name, {})
        return int(sum(x for p, x in per_peer.items() if peer is None or p.endswith(peer)))

    return {
        "relay_retransmits": counter("3", "regio_trunk_retransmits", "2"),
        "relay_nack_misses": counter("3", "regio_trunk_nack_misses", "2"),
        "hop_nacks_to_relay": counter("2", "regio_trunk_nacks_sent", "3"),
        "source_retransmits": counter("1", "regio_trunk_retransmits", None),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def run(spec: TrunkBenchSpec) -> dict[str, Any]:
    require_root("regio bench trunk")
    work = Path(tempfile.mkdtemp(prefix="regio-bench-trunk-"))
    try:
        with network(["ctl", "r1", "r2", "r3"]) as net:
            lab = Lab(net, work)
            lab.start_etcd()
            lab.start_routers("la", "loss-aware")
            try:
                aware, onset, cpu_s = lab.measure("la", "aware", spec, spec.warmup)
                idle_percent = lab.idle_cpu_per_s * 100
            finally:
                lab.stop_routers()
            assert onset is not None
            lab.start_routers("do", "direct")
            try:
                direct, _, _ = lab.measure("do", "direct", spec, None)
            finally:
                lab.stop_routers()
        result = analyse(aware, onset, direct, cpu_s)
        result["router_idle_cpu_percent"] = round(idle_percent, 1)
        result.update({"loss_percent": spec.loss, "relay_loss_percent": spec.relay_loss,
                       "seconds": spec.seconds, "pps": spec.pps, "size": spec.size,
                       "warmup": spec.warmup})
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


__all__ = ["BenchError", "TrunkBenchSpec", "analyse", "run"]
