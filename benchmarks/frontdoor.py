"""``regio bench frontdoor``: joins per second and latency of a real front door, plus GeoIP.

Set-up: a local etcd, the demo topology (infra/local/topology.toml), one router and one TURN
node per region registered through ``control.registry`` (real leases; records only), and
``regio frontdoor`` as a subprocess pinned to one core (its own HTTP server, or Hypercorn with
``--http-server hypercorn``; HTTPS with ``--tls``), trusting 127.0.0.1 as its proxy, with the
rate limit lifted. The front door's CPU time over each measured window is read from /proc, so
the cost per join is reported alongside the rate (on a shared machine the rate moves with other
load far more than the cost does). The load generator (:mod:`benchmarks.frontdoor_client`)
is a separate process pinned to another core, driving ``concurrency`` keep-alive HTTP/1.1
connections with one request in flight each.

Two phases, because they cost different things: ``existing`` joins a fixed set of rooms that
the warm-up placed (answered from the front door's caches: no etcd), and ``new`` names a new
room on every join (each costs an etcd create-if-absent transaction). GeoIP lookups per second
come from :func:`benchmarks.geo_lookup.run` in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import geo_lookup
from benchmarks.frontdoor_cluster import REPO, LocalFrontdoorCluster, python_env, record_nodes

TARGET_JOINS = 5000
TARGET_P99_MS = 20.0
REGIONS = ["eu-central", "eu-north", "us-east"]


def _cpus() -> tuple[int | None, int | None]:
    """Front door on the first allowed core, the generator on the last (if there are two)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return None, None
    if len(allowed) < 2:
        return None, None
    return allowed[0], allowed[-1]


def _drive(url: str, mode: str, concurrency: int, seconds: float, cpu: int | None,
           server_pid: int) -> dict[str, Any]:
    argv = [sys.executable, "-m", "benchmarks.frontdoor_client", "--url", url, "--mode", mode,
            "--concurrency", str(concurrency), "--seconds", str(seconds),
            "--server-pid", str(server_pid)]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    result = subprocess.run(argv, capture_output=True, env=python_env(), cwd=str(REPO),
                            timeout=seconds + 120)
    if result.returncode != 0:
        raise RuntimeError(f"load generator failed: {result.stderr.decode()[-1500:]}")
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def self_signed(directory: Path) -> tuple[str, str]:
    """A throwaway certificate for 127.0.0.1 (the TLS runs; the generator does not verify)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regio bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "bench.crt", directory / "bench.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def run(concurrency: int = 32, seconds: float = 5.0, lookup_seconds: float = 2.0,
        server: str = "regio", tls: bool = False) -> dict[str, Any]:
    """Measure both phases and GeoIP; every process is stopped before returning."""
    server_cpu, client_cpu = _cpus()
    loadavg = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="regio-bench-frontdoor-") as tmp:
        cluster = LocalFrontdoorCluster(Path(tmp))
        cluster.start()
        try:
            cluster.add_nodes("nodes", record_nodes(cluster.topology, REGIONS,
                                                    metrics=False))
            extra = ["--http-server", server]
            if tls:
                cert, key = self_signed(Path(tmp))
                extra += ["--tls-cert", cert, "--tls-key", key]
            proc, url = cluster.add_frontdoor(
                "frontdoor", "--trusted-proxy", "127.0.0.1/32", "--rate-limit", "1e12",
                "--rate-burst", "1e12", "--room-rate", "1e12", "--room-burst", "1e12",
                # The nodes are registry records with nothing listening: no health probes.
                "--probe-interval", "0", *extra, cpu=server_cpu)
            phases = {mode: _drive(url, mode, concurrency, seconds, client_cpu,
                                   proc.popen.pid)
                      for mode in ("existing", "new")}
        finally:
            cluster.stop()
    lookups = geo_lookup.run(lookup_seconds)
    return {
        "server": server,
        "tls": tls,
        "loadavg": loadavg,
        "concurrency": concurrency,
        "seconds": seconds,
        "frontdoor_cpu": server_cpu,
        "generator_cpu": client_cpu,
        "existing_rooms": phases["existing"],
        "new_rooms": phases["new"],
        "geoip_lookups_per_second": lookups["lookups_per_second"],
        "targets": {"joins_per_second": TARGET_JOINS, "p99_ms": TARGET_P99_MS,
                    "lookups_per_second": lookups["target_per_second"]},
    }


def record_rows(figures: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    server = f"{figures['server']}{' + TLS' if figures['tls'] else ''}"
    for label, key in (("join, existing room (cached)", "existing_rooms"),
                       ("join, new room (etcd txn)", "new_rooms")):
        phase = figures[key]
        rows.append((label, server, str(figures["concurrency"]),
                     f"{phase['joins_per_second']:,.0f}",
                     f"{phase['p50_ms']:.2f}", f"{phase['p99_ms']:.2f}",
                     _figure(phase.get("server_cpu_us_per_join")),
                     _figure(phase.get("server_cpu_percent")),
                     _figure(phase.get("generator_cpu_percent")),
                     ", ".join(f"{k}: {v}" for k, v in phase["statuses"].items())))
    rows.append(("GeoIP lookup (embedded db)", "-", "-",
                 f"{figures['geoip_lookups_per_second']:,.0f}", "-", "-", "-", "-", "-", "-"))
    return rows


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


RECORD_COLUMNS = ["operation", "server", "concurrency", "per second", "p50 ms", "p99 ms",
                  "server CPU us/join", "server CPU %", "generator CPU %", "statuses"]


def add_command(kinds: Any) -> None:
    """Register ``regio bench frontdoor`` (called from :mod:`benchmarks.cli`)."""
    parser = kinds.add_parser(
        "frontdoor",
        help="join API throughput and latency (existing and new rooms) and GeoIP lookups/s",
        description="Start etcd, registered nodes and `regio frontdoor` (one core), drive "
        "joins from a separate process over keep-alive HTTP/1.1, report joins/s and p50/p99 "
        f"for existing and new rooms (targets: {TARGET_JOINS:,} joins/s, p99 < "
        f"{TARGET_P99_MS:g} ms) and GeoIP lookups/s (target 200,000).",
    )
    parser.add_argument("--concurrency", type=int, default=32,
                        help="connections, one join in flight each (default 32)")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="measured seconds per phase, after 1 s of warm-up (default 5)")
    parser.add_argument("--http-server", choices=["regio", "hypercorn"], default="regio",
                        help="the front door's HTTP server (default regio, its own)")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS (a throwaway certificate) and drive it over TLS 1.3")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--record", action="store_true", help="append to benchmarks/RESULTS.md")
    parser.set_defaults(handler=run_command)


def run_command(args: Any) -> int:
    from benchmarks import machine, results
    from control.clierror import CliError

    if args.concurrency < 1 or args.seconds <= 0:
        raise CliError("--concurrency must be at least 1 and --seconds positive")
    try:
        figures = run(args.concurrency, args.seconds, server=args.http_server, tls=args.tls)
    except (RuntimeError, OSError) as exc:
        raise CliError(str(exc)) from None
    if args.json:
        json.dump({"machine": machine.describe(), **figures}, sys.stdout, indent=2)
        print()
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"regio bench frontdoor (front door on cpu "
                            f"{figures['frontdoor_cpu']}, generator on cpu "
                            f"{figures['generator_cpu']})")
        for column in RECORD_COLUMNS:
            table.add_column(column, justify="left" if column == "operation" else "right")
        for row in record_rows(figures):
            table.add_row(*row)
        Console(width=max(Console().width, 150)).print(table)
    if args.record:
        command = f"regio bench frontdoor --concurrency {args.concurrency} --seconds " \
            f"{args.seconds:g} --http-server {args.http_server}{' --tls' if args.tls else ''}"
        server = ("the front door's own HTTP/1.1 server (geo/frontdoor/fastserver.py: joins on "
                  "raw non-blocking sockets, other routes through Starlette in-process)"
                  if args.http_server == "regio" else "Hypercorn (h11) + Starlette")
        results.record_section(
            "Front door joins", command, RECORD_COLUMNS, record_rows(figures),
            notes=f"one front door process on one core, {server}, Trio; keep-alive HTTP/1.1"
            f"{' over TLS 1.3' if args.tls else ''} from a separate generator process on the "
            "other core, one request in flight per connection; X-Forwarded-For from distinct "
            "public addresses (one GeoIP lookup per join); server CPU is utime+stime from "
            "/proc over the measured window (CPU us/join is the figure least disturbed by "
            "other load); targets 5,000 joins/s (joins of existing rooms: a meeting's joins "
            "after its first; a new room costs an etcd transaction), p99 < 20 ms, 200,000 "
            f"lookups/s; load average before the run {figures['loadavg']:.2f}; "
            f"{machine.load_note()}",
        )
    return 0
