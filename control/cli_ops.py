"""Operator tools: ``regio doctor`` (is this machine fit to run a node?) and ``regio top`` (what
is the cluster doing now?)."""

from __future__ import annotations

import argparse
import datetime
import tomllib
from pathlib import Path
from typing import Any

import trio

from control import doctor, schema
from control.cli_common import add_etcd_arguments, etcd_config
from control.clierror import CliError
from control.doctor import Finding, Listener
from control.etcd import EtcdClient, EtcdConfig, EtcdError

DEFAULT_UDP_BUFFER = 1024 * 1024  # RouterConfig.udp_buffer's default


def add_commands(subparsers: Any) -> None:
    doc = subparsers.add_parser(
        "doctor", help="check this machine for running a node; prints the fix for each problem",
        description="Checks: the ports a node config asks for are free, etcd answers with the "
        "configured auth, the clock agrees with etcd's, the GeoIP database is recent, "
        "certificates are valid, UDP buffer sysctls are big enough. Exit 1 when a check "
        "fails (also on warnings with --strict).")
    doc.add_argument("--config", metavar="FILE",
                     help="node TOML ([router], [turn], [frontdoor]): its ports, certificates, "
                     "GeoIP database and UDP buffer size are checked")
    doc.add_argument("--port", metavar="udp|tcp:HOST:PORT", action="append", default=[],
                     help="another port that must be free (repeatable)")
    doc.add_argument("--cert", metavar="PEM", action="append", default=[],
                     help="another certificate to check (repeatable)")
    doc.add_argument("--geoip-db", metavar="PATH", help="GeoIP database (default: the embedded "
                     "one, or the config's)")
    doc.add_argument("--geoip-max-age", metavar="DAYS", type=float, default=35.0,
                     help="older databases are a warning (default 35)")
    doc.add_argument("--cert-warn-days", metavar="DAYS", type=float, default=14.0,
                     help="certificates expiring sooner are a warning (default 14)")
    doc.add_argument("--max-skew", metavar="SECONDS", type=float, default=1.0,
                     help="clock difference to etcd that fails (default 1)")
    doc.add_argument("--no-etcd", action="store_true", help="skip the etcd and clock checks")
    doc.add_argument("--strict", action="store_true", help="warnings fail too")
    doc.add_argument("--json", action="store_true", help="one JSON object")
    add_etcd_arguments(doc)
    doc.set_defaults(handler=cmd_doctor)

    from control.top import add_top_command

    add_top_command(subparsers)


def _parse_port(spec: str) -> Listener:
    protocol, sep, rest = spec.partition(":")
    host, sep2, port = rest.rpartition(":")
    if not sep or not sep2 or protocol not in ("udp", "tcp") or not port.isdigit():
        raise CliError(f"--port {spec!r}: give udp:HOST:PORT or tcp:HOST:PORT")
    if not 0 < int(port) <= 65535:
        raise CliError(f"--port {spec!r}: port must be 1-65535")
    return Listener(protocol, host.strip("[]"), int(port), "--port")


async def check_etcd(config: EtcdConfig, max_skew: float) -> list[Finding]:
    """Reach etcd with the configured auth: every endpoint's status, a read, then the clock."""
    findings: list[Finding] = []
    try:
        async with EtcdClient(config) as client:
            statuses = await client.status()
            if not statuses:
                raise EtcdError("no endpoint answered")
            await client.get(schema.TOPOLOGY_KEY)
    except (EtcdError, OSError) as exc:
        fix = ("check --etcd (is etcd running and reachable from here?)"
               + ("; with https give --etcd-ca, and --etcd-cert/--etcd-key when it requires "
                  "client certificates" if any(e.secure for e in config.endpoints) else ""))
        return [Finding("etcd", "fail", f"{config.urls}: {exc}", fix)]
    missing = len(config.endpoints) - len(statuses)
    leaders = {s.leader_id for s in statuses}
    detail = (f"{len(statuses)}/{len(config.endpoints)} endpoints answer, "
              f"leader {'agreed' if len(leaders) == 1 and 0 not in leaders else 'UNCLEAR'}")
    if missing or len(leaders) != 1 or 0 in leaders:
        findings.append(Finding("etcd", "warn", detail,
                                "bring the silent endpoints back or drop them from --etcd"))
    else:
        findings.append(Finding("etcd", "ok", detail))
    context = doctor.etcd_ssl_context(config.ca_cert, config.client_cert, config.client_key)
    url = statuses[0].endpoint
    findings.append(await trio.to_thread.run_sync(doctor.probe_clock, url, context, max_skew))
    return findings


def cmd_doctor(args: argparse.Namespace) -> int:
    document: dict[str, Any] = {}
    if args.config:
        try:
            document = tomllib.loads(Path(args.config).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CliError(f"--config {args.config}: {exc}") from None
    try:
        listeners = doctor.listeners_from_config(document)
    except (ValueError, TypeError, AttributeError) as exc:
        raise CliError(f"--config {args.config}: bad listener: {exc}") from None
    listeners += [_parse_port(p) for p in args.port]
    config = None if args.no_etcd else etcd_config(args)

    findings = [doctor.probe_port(listener) for listener in listeners]
    if config is not None:
        findings += trio.run(check_etcd, config, args.max_skew)
    from geo.geoip import DEFAULT_DATABASE

    geoip = args.geoip_db or doctor.geoip_from_config(document) or str(DEFAULT_DATABASE)
    findings.append(doctor.probe_geoip(geoip, args.geoip_max_age))
    now = datetime.datetime.now(datetime.UTC)
    certs = doctor.certificates_from_config(document) + list(args.cert)
    if config is not None:
        certs += [c for c in (config.ca_cert, config.client_cert) if c]
    findings += [doctor.probe_certificate(c, now, args.cert_warn_days) for c in certs]
    findings.append(doctor.probe_udp_buffers(
        doctor.udp_buffer_from_config(document, DEFAULT_UDP_BUFFER)))
    status = doctor.exit_status(findings, args.strict)
    if args.json:
        print(doctor.render_json(findings, status))
    else:
        print("\n".join(doctor.render_text(findings)))
    return status
