"""The ``regio`` command line.

Each area registers its own subcommands through an ``add_commands(subparsers)`` function in its
own module, so the CLI grows without one file knowing every command's options. Handlers return
an exit status; errors meant for the operator are raised as :class:`CliError` and printed as one
line on stderr (exit 2), never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from control.clierror import CliError

#: Modules that contribute subcommands, in the order ``--help`` lists them. A module that does
#: not exist yet (a later roadmap step) is skipped, so the CLI always starts.
COMMAND_MODULES: tuple[str, ...] = (
    "control.cli_cluster",
    "control.cli_node",
    "control.cli_audit",
    "control.cli_ops",
    "geo.cli",
    "turn.cli",
    "router.cli",
    "benchmarks.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regio",
        description=(
            "Regio: a region-aware WebRTC media router cluster (SFU + TURN) that keeps every "
            "client of a restricted jurisdiction (the EEA) on nodes of that jurisdiction."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold (logs never carry a raw client address)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from control.logs import configure_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # re-run by worker supervisors
    configure_logging(args.log_level)
    try:
        status = args.handler(args)
    except CliError as exc:
        print(f"regio {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BaseExceptionGroup as group:
        # An operator's error raised inside a node's task nursery arrives wrapped.
        errors, rest = group.split(CliError)
        if errors is None or rest is not None:
            raise
        first: BaseException = errors
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        print(f"regio {args.command}: error: {first}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
