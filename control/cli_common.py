"""Pieces every control-plane subcommand shares: the ``--etcd`` options and error mapping.

Operators get one clear line for the mistakes they can fix (bad URL, etcd down, TLS files
missing) instead of a gRPC traceback.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import trio

from control.clierror import CliError
from control.config import ConfigError, add_arguments, load, overrides_from_args
from control.etcd import EtcdClient, EtcdConfig, EtcdError, EtcdUnavailable

T = TypeVar("T")

DEFAULT_ETCD = "http://127.0.0.1:2379"


def add_process_arguments(parser: argparse.ArgumentParser, cls: type[Any], section: str) -> None:
    """What every long-running node command takes: ``--config FILE`` (its ``[section]``
    table), the ``--etcd`` options, and one ``--flag`` per field of its config dataclass."""
    parser.add_argument("--config", metavar="FILE", help=f"TOML file with a [{section}] table")
    add_etcd_arguments(parser)
    add_arguments(parser, cls)


def load_process_config(
    args: argparse.Namespace, cls: type[T], section: str,
    overrides: dict[str, Any] | None = None,
) -> T:
    """Defaults, then the ``--config`` file's ``[section]``, then the flags given (or
    ``overrides``); a bad value is one clear :class:`CliError` line."""
    if overrides is None:
        overrides = overrides_from_args(args, cls)
    try:
        return load(cls, args.config, section=section, overrides=overrides)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def require_region(region: str) -> None:
    """Every node belongs to one region (routers and TURN nodes alike)."""
    if not region:
        raise CliError("--region is required")


def run_node(
    args: argparse.Namespace,
    clustered: Callable[[EtcdConfig], Awaitable[int]],
    standalone: Callable[[], Awaitable[int]],
) -> int:
    """Run a node process under Trio: ``clustered`` with ``--etcd``, else ``standalone``.

    What the router and TURN commands share: the etcd options are checked before anything
    starts, and the mistakes an operator fixes (a port in use, an unknown region, etcd out of
    reach) end as one :class:`CliError` line even when raised inside a task nursery.
    """
    etcd = etcd_config(args) if args.etcd else None
    try:
        if etcd is not None:
            return trio.run(clustered, etcd)
        return trio.run(standalone)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:
        raise _operator_error(exc) or exc from None


def _operator_error(exc: BaseException) -> CliError | None:
    """The one-line error for an operator's mistake, looking inside single-error groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, EtcdUnavailable):
        return CliError(str(exc))
    if isinstance(exc, EtcdError):
        return CliError(f"etcd: {exc}")
    if isinstance(exc, OSError):
        return CliError(f"cannot listen: {exc.strerror or exc}")
    if isinstance(exc, LookupError):
        return CliError(str(exc))
    return None


def add_etcd_arguments(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--etcd URL[,URL...]`` plus the TLS files for https endpoints."""
    parser.add_argument(
        "--etcd",
        metavar="URL",
        required=required,
        default=None if required else os.environ.get("REGIO_ETCD", DEFAULT_ETCD),
        help="etcd client URL(s), comma-separated (http:// or https://)"
        + ("" if required else "; default $REGIO_ETCD or " + DEFAULT_ETCD),
    )
    parser.add_argument("--etcd-cacert", "--etcd-ca", dest="etcd_ca", metavar="PEM",
                        help="CA certificate for https endpoints (--etcd-ca is the old name)")
    parser.add_argument("--etcd-cert", metavar="PEM", help="client certificate (mutual TLS)")
    parser.add_argument("--etcd-key", metavar="PEM", help="client key (mutual TLS)")
    parser.add_argument("--etcd-user", metavar="NAME",
                        default=os.environ.get("REGIO_ETCD_USER"),
                        help="etcd user (etcd auth enabled); default $REGIO_ETCD_USER")
    parser.add_argument("--etcd-password-file", metavar="FILE",
                        help="file holding the etcd user's password (else $REGIO_ETCD_PASSWORD;"
                        " never on the command line, where ps shows it)")
    parser.add_argument("--secrets-key", metavar="FILE", default=None,
                        help="key file sealing the secrets stored in etcd (default "
                        "$REGIO_SECRETS_KEY); `regio secrets new-key FILE` makes one")
    parser.add_argument("--etcd-timeout", metavar="SECONDS", type=float, default=3.0,
                        help="per-request timeout on each endpoint (default 3)")


def etcd_config(args: argparse.Namespace) -> EtcdConfig:
    """The :class:`EtcdConfig` the arguments describe, or a :class:`CliError`."""
    for name in ("etcd_ca", "etcd_cert", "etcd_key"):
        path = getattr(args, name, None)
        if path is not None and not os.path.isfile(path):
            raise CliError(f"--{name.replace('_', '-')}: no such file: {path}")
    if args.etcd_timeout <= 0:
        raise CliError("--etcd-timeout must be positive")
    user, password = getattr(args, "etcd_user", None), None
    password_file = getattr(args, "etcd_password_file", None)
    if password_file is not None:
        try:
            password = Path(password_file).read_text().rstrip("\n")
        except OSError as exc:
            raise CliError(f"--etcd-password-file {password_file}: "
                           f"{exc.strerror or exc}") from None
    elif user:
        password = os.environ.get("REGIO_ETCD_PASSWORD")
    if user and not password:
        raise CliError("--etcd-user needs a password: --etcd-password-file FILE or "
                       "$REGIO_ETCD_PASSWORD")
    if password and not user:
        raise CliError("an etcd password without --etcd-user")
    try:
        config = EtcdConfig.from_urls(
            args.etcd,
            ca_cert=args.etcd_ca,
            client_cert=args.etcd_cert,
            client_key=args.etcd_key,
            timeout=args.etcd_timeout,
            user=user or None,
            password=password,
            secrets_key=getattr(args, "secrets_key", None) or os.environ.get("REGIO_SECRETS_KEY"),
        )
    except ValueError as exc:
        raise CliError(f"--etcd: {exc}") from None
    if any(e.secure for e in config.endpoints) and config.ca_cert is None:
        raise CliError("--etcd uses https: give the CA certificate with --etcd-ca")
    if (config.client_cert is None) != (config.client_key is None):
        raise CliError("mutual TLS needs both --etcd-cert and --etcd-key")
    return config


def run_with_etcd(args: argparse.Namespace, fn: Callable[[EtcdClient], Awaitable[T]]) -> T:
    """Run ``fn(client)`` under Trio, turning etcd failures into one-line CLI errors."""
    config = etcd_config(args)

    async def main() -> T:
        async with EtcdClient(config) as client:
            return await fn(client)

    try:
        return trio.run(main)
    except EtcdUnavailable as exc:
        detail = str(exc).removeprefix("etcd unreachable").strip()
        raise CliError(f"cannot reach etcd at {config.urls} {detail}".rstrip()) from None
    except EtcdError as exc:
        raise CliError(f"etcd at {config.urls}: {exc}") from None
