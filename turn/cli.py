"""``regio turn``: run a TURN node (standalone with ``--auth-secret``, or clustered with
``--etcd``). Every :class:`~turn.server.config.TurnConfig` field is a flag and a key of the
``[turn]`` table of ``--config FILE``; flags win over the file.
"""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

from control.clierror import CliError
from turn.server.config import TurnConfig


def add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "turn",
        help="run a TURN node (RFC 8656 relay with region-bound REST credentials)",
        description="Run a TURN node. Standalone: --auth-secret S (coturn's use-auth-secret). "
        "Clustered: --etcd URL (registers as kind turn, secrets from etcd). SIGTERM drains.",
    )
    from control.cli_common import add_process_arguments

    add_process_arguments(parser, TurnConfig, "turn")
    parser.set_defaults(etcd=None, handler=cmd_turn)


def build_config(args: argparse.Namespace) -> TurnConfig:
    """The validated configuration the arguments and file describe, or a :class:`CliError`."""
    from control.cli_common import load_process_config, require_region

    config = load_process_config(args, TurnConfig, "turn")
    require_region(config.region)
    if not config.auth_secret and not args.etcd:
        raise CliError("give --auth-secret (standalone) or --etcd (secrets from the cluster)")
    if config.tls_listen and not (config.tls_cert and config.tls_key):
        raise CliError("--tls-listen needs --tls-cert and --tls-key")
    try:
        from turn.server.server import parse_port_range

        low, high = parse_port_range(config.relay_ports)
        if not 0 < low <= high <= 65535:
            raise ValueError(f"relay port range {config.relay_ports} is not within 1-65535")
        for cidr in config.allow_peer:
            ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if config.network_quota < 1 or config.user_quota < 1:
        raise CliError("--network-quota and --user-quota must be at least 1")
    if config.udp_amplification_factor < 1:
        raise CliError("--udp-amplification-factor must be at least 1")
    if config.lease_ttl < 1:
        raise CliError("--lease-ttl must be at least 1 second")
    if config.default_lifetime > config.max_lifetime:
        raise CliError("--default-lifetime exceeds --max-lifetime")
    return config


def cmd_turn(args: argparse.Namespace) -> int:
    from control.cli_common import run_node
    from control.etcd import EtcdConfig
    from turn.server.node import run_clustered, run_standalone

    config = build_config(args)

    async def clustered(etcd: EtcdConfig) -> int:
        config.etcd_endpoints = [f"{e.host}:{e.port}" for e in etcd.endpoints]
        return await run_clustered(config, etcd)

    return run_node(args, clustered, lambda: run_standalone(config))


__all__ = ["add_commands", "build_config", "cmd_turn"]
