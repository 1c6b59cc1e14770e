"""``regio frontdoor``: the GeoIP front door (HTTPS join API; its own HTTP/1.1 server or
Hypercorn, Starlette for the other routes, Trio).

Flags are the fields of :class:`~geo.frontdoor.config.FrontdoorConfig` (also the keys of the
``[frontdoor]`` table of ``--config FILE``), plus the shared ``--etcd`` options. ``--host`` and
``--port`` are accepted as another spelling of ``--listen HOST:PORT`` because that is how
``regio cluster up`` starts every process. Once listening, it prints one line
``regio frontdoor ready url=URL etcd=URLS`` on stdout.
"""

from __future__ import annotations

import argparse
from typing import Any

from control.clierror import CliError
from control.config import overrides_from_args
from geo.frontdoor.config import FrontdoorConfig


def add_command(subparsers: Any) -> None:
    from control.cli_common import add_process_arguments

    parser = subparsers.add_parser(
        "frontdoor",
        help="run the GeoIP front door (join API: residency-first router and TURN assignment)",
        description="Serve POST /v1/rooms/{room}/join, /healthz and the meeting page; "
        "/metrics and /v1/prometheus/targets only on the separate --metrics-listen listener. "
        "HTTPS (TLS 1.2+) with --tls-cert/--tls-key; plain HTTP only on a loopback address. "
        "Clients of a restricted jurisdiction only ever get nodes inside it; no allowed node "
        "answers 503.",
    )
    parser.add_argument("--host", help="listen host (with --port: same as --listen HOST:PORT)")
    parser.add_argument("--port", type=int, help="listen port (with --host)")
    add_process_arguments(parser, FrontdoorConfig, "frontdoor")
    parser.set_defaults(handler=cmd_frontdoor)


def build_config(args: argparse.Namespace) -> FrontdoorConfig:
    overrides = overrides_from_args(args, FrontdoorConfig)
    if args.host is not None or args.port is not None:
        if "listen" in overrides:
            raise CliError("give --listen or --host/--port, not both")
        host = args.host or "127.0.0.1"
        port = 8443 if args.port is None else args.port
        overrides["listen"] = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    from control.cli_common import load_process_config

    config = load_process_config(args, FrontdoorConfig, "frontdoor", overrides)
    if bool(config.tls_cert) != bool(config.tls_key):
        raise CliError("--tls-cert and --tls-key go together")
    if not config.topology_from_etcd and not config.topology:
        raise CliError("--no-topology-from-etcd needs --topology FILE")
    if config.rate_limit <= 0 or config.rate_burst < 1:
        raise CliError("--rate-limit must be positive and --rate-burst at least 1")
    if config.max_body < 64 or config.token_ttl < 1 or config.turn_ttl < 1:
        raise CliError("--max-body must be at least 64 and the TTLs positive")
    from geo.client_address import parse_trusted_proxies
    from geo.frontdoor.tls import check_plain_listen, split_host_port

    try:
        parse_trusted_proxies(config.trusted_proxy)
        host, port = split_host_port(config.listen)
        if not config.tls_cert:
            check_plain_listen(host)
        if config.metrics_listen:
            metrics = split_host_port(config.metrics_listen)
            if metrics == (host, port) and port != 0:
                raise ValueError("--metrics-listen must not be the public --listen address")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return config


def cmd_frontdoor(args: argparse.Namespace) -> int:
    from control.cli_common import etcd_config
    from geo.frontdoor.server import main

    config = build_config(args)
    return main(config, etcd_config(args))


__all__ = ["add_command", "build_config", "cmd_frontdoor"]
