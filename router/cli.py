"""``regio router``: run an SFU router node.

Every :class:`~router.config.RouterConfig` field is a flag and a key of the ``[router]`` table
of ``--config FILE`` (flags win). With ``--etcd`` the router joins the cluster (registers,
takes join-token keys from etcd, drains on SIGTERM or ``regio node drain``); without it,
``--token-key KID:SECRET`` supplies the join-token key (tests, benchmarks, single-node use).
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path
from typing import Any

from control.clierror import CliError
from router.config import RouterConfig


def add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "router",
        help="run an SFU router (one UDP port, WebSocket signaling, SRTP forwarding)",
        description="Run an SFU router: regio router --region R --etcd URL --listen HOST "
        "--udp-port N --signaling HOST:PORT [--metrics HOST:PORT]. SIGTERM drains.",
    )
    from control.cli_common import add_process_arguments

    add_process_arguments(parser, RouterConfig, "router")
    parser.set_defaults(etcd=None, handler=cmd_router)


def build_config(args: argparse.Namespace) -> RouterConfig:
    """The validated configuration, with the ``--host/--port`` form expanded."""
    from control.cli_common import load_process_config, require_region

    config = load_process_config(args, RouterConfig, "router")
    require_region(config.region)
    from router.workers import MAX_WORKERS

    if not 0 <= config.workers <= MAX_WORKERS:
        raise CliError(f"--workers must be 1-{MAX_WORKERS} (or 0: one per core)")
    if config.workers == 0:
        from router.workers import default_workers

        config.workers = default_workers()
    if config.host:
        config.listen = config.host
    if config.port:
        if not 0 < config.port <= 65533:
            raise CliError("--port must leave room for PORT+2")
        config.udp_port = config.udp_port or config.port
        host = f"[{config.listen}]" if ":" in config.listen else config.listen
        config.signaling = config.signaling or f"{host}:{config.port + 1}"
        config.metrics = config.metrics or f"{host}:{config.port + 2}"
    try:
        ipaddress.ip_address(config.listen)
        if config.public_ip:
            ipaddress.ip_address(config.public_ip)
    except ValueError as exc:
        raise CliError(f"--listen/--public-ip must be IP addresses: {exc}") from None
    if not 0 <= config.udp_port <= 65535:
        raise CliError("--udp-port must be 0-65535")
    from router.node import split_host_port

    for name in ("signaling", "metrics"):
        value = getattr(config, name)
        if value:
            try:
                split_host_port(value)
            except ValueError as exc:
                raise CliError(f"--{name}: {exc}") from None
    if bool(config.tls_cert) != bool(config.tls_key):
        raise CliError("--tls-cert and --tls-key go together")
    trunk = (config.trunk_cert, config.trunk_key, config.trunk_ca)
    if any(trunk) and not all(trunk):
        raise CliError("--trunk-cert, --trunk-key and --trunk-ca go together")
    if all(trunk):
        from router.trunk.quic import TrunkIdentity
        from router.workers import NODE_PLACEHOLDER, base_node_id

        identities: list[tuple[str, ...]] = [trunk]
        if config.workers > 1:
            # Each worker is its own router, so each needs a certificate naming its own id.
            if not all(NODE_PLACEHOLDER in p for p in trunk[:2]):
                raise CliError(f"with --workers, --trunk-cert and --trunk-key must contain "
                               f"{NODE_PLACEHOLDER} (one certificate per worker, named "
                               f"<node-id>-w<k>: see `regio secrets issue`)")
            base = base_node_id(config)
            identities = [tuple(p.replace(NODE_PLACEHOLDER, f"{base}-w{k}") for p in trunk)
                          for k in range(config.workers)]
        for identity in identities:
            try:
                TrunkIdentity.load(*(Path(p) for p in identity))
            except (OSError, ValueError) as exc:
                raise CliError(str(exc)) from None
        if not args.etcd:
            raise CliError("trunks need the cluster: give --etcd URL")
    if config.trunk_paths not in ("loss-aware", "direct"):
        raise CliError("--trunk-paths must be loss-aware or direct")
    if not 0 <= config.trunk_port <= 65535:
        raise CliError("--trunk-port must be 0-65535")
    _check_worker_ports(config)
    signaling_host = split_host_port(config.signaling)[0] if config.signaling else config.listen
    if not config.tls_cert and not _loopback(signaling_host.strip("[]")):
        raise CliError("plain ws signaling only on loopback: give --tls-cert/--tls-key for wss")
    if not args.etcd and not config.token_key:
        raise CliError("give --etcd URL (cluster) or --token-key KID:SECRET (standalone)")
    return config


def _check_worker_ports(config: RouterConfig) -> None:
    """Every worker's ports exist. Worker k's ports come from router.workers.worker_overrides,
    and the last worker's are the highest, so its flags are the ones checked."""
    from router.workers import worker_overrides

    if config.workers < 2:
        return
    flags = worker_overrides(config, "check", config.workers - 1, config.workers)
    for option, value in zip(flags[::2], flags[1::2], strict=True):
        if option in ("--signaling", "--metrics"):
            port = int(value.rpartition(":")[2])
        elif option in ("--port", "--udp-port", "--trunk-port"):
            port = int(value) + (2 if option == "--port" else 0)  # --port P: P to P+2
        else:
            continue
        if port > 65535:
            raise CliError(f"{option}: {config.workers} workers would need ports up to "
                           f"{port}, past 65535")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def static_keys(specs: list[str]) -> dict[str, Any]:
    """``KID:SECRET`` pairs as the verifier's key mapping."""
    from control.schema import SecretKey

    keys = {}
    for spec in specs:
        kid, sep, secret = spec.partition(":")
        if not sep or not kid or not secret:
            raise CliError(f"--token-key {spec!r} is not KID:SECRET")
        keys[kid] = SecretKey(kid, secret, 0.0, None)
    return keys


def cmd_router(args: argparse.Namespace) -> int:
    from control.cli_common import run_node
    from router.cluster import run_clustered
    from router.node import RouterNode

    config = build_config(args)
    if config.workers > 1:
        from router.workers import run_workers

        return run_workers(args.argv, config, config.workers)
    keys = static_keys(config.token_key) if not args.etcd else {}

    async def standalone() -> int:
        return await RouterNode(config, lambda: keys).run_standalone()

    return run_node(args, lambda etcd: run_clustered(config, etcd), standalone)


__all__ = ["add_commands", "build_config", "cmd_router"]
