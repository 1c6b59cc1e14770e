"""The one exception type the CLI turns into a clean one-line error message."""

from __future__ import annotations


class CliError(Exception):
    """An operator mistake (bad flag, unreadable file, unreachable etcd) worth one clear line."""
