"""Configuration as documented dataclasses, loaded from TOML and overridden by CLI flags.

Every process of Regio (router, TURN, front door) describes its settings as a dataclass whose
fields carry their documentation (:func:`setting`). One loader serves them all, so every
process rejects unknown keys and wrong types the same way, with the file and the key named, and
``--help`` shows the same words as the TOML reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_MISSING: Any = dataclasses.MISSING


class ConfigError(ValueError):
    """A configuration value or file that cannot be used; the message names where and why."""


def setting(default: Any = _MISSING, *, doc: str, default_factory: Any = _MISSING) -> Any:
    """A dataclass field with its documentation attached (shown by ``--help``)."""
    metadata = {"doc": doc}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_docs(cls: type[Any]) -> dict[str, str]:
    """Each field's documentation, for reference output and tests."""
    return {f.name: str(f.metadata.get("doc", "")) for f in dataclasses.fields(cls)}


def from_mapping(cls: type[T], data: Mapping[str, Any], source: str = "<config>") -> T:
    """Build ``cls`` from a mapping, converting and checking each value against its type."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in data.items():
        name = key.replace("-", "_")
        if name not in fields:
            known = ", ".join(sorted(f.replace("_", "-") for f in fields))
            raise ConfigError(f"{source}: unknown setting {key!r} (known: {known})")
        values[name] = _convert(raw, hints[name], f"{source}: {key}")
    for name, f in fields.items():
        no_default = f.default is _MISSING and f.default_factory is _MISSING
        if name not in values and no_default:
            raise ConfigError(f"{source}: missing required setting {name.replace('_', '-')!r}")
    return cls(**values)


def load(
    cls: type[T],
    path: str | Path | None = None,
    *,
    section: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Defaults, then the TOML file (optionally one ``[section]`` of it), then ``overrides``."""
    merged: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as handle:
                document = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        if section is not None:
            table = document.get(section, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{source}: [{section}] must be a table")
            document = table
        merged.update(document)
    if overrides:
        merged.update({k: v for k, v in overrides.items() if v is not None})
        if path is None:
            source = "command line"
    return from_mapping(cls, merged, source)


def add_arguments(parser: argparse.ArgumentParser, cls: type[Any]) -> None:
    """Add one ``--field-name`` option per field; unset options leave the file's value alone."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        doc = str(f.metadata.get("doc", ""))
        base = _strip_optional(hints[f.name])
        default_text = "" if f.default is _MISSING else f" (default: {f.default})"
        if base is bool:
            parser.add_argument(
                flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction,
                help=doc + default_text,
            )
        elif typing.get_origin(base) in (list, tuple):
            parser.add_argument(
                flag, dest=f.name, default=None, action="append", help=doc + " (repeatable)"
            )
        else:
            parser.add_argument(flag, dest=f.name, default=None, help=doc + default_text)


def overrides_from_args(args: argparse.Namespace, cls: type[Any]) -> dict[str, Any]:
    """The fields the user actually gave on the command line."""
    return {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(cls)
        if getattr(args, f.name, None) is not None
    }


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _convert(raw: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if raw is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(raw, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {raw!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if raw not in allowed:
            raise ConfigError(f"{where}: {raw!r} is not one of {', '.join(map(repr, allowed))}")
        return raw
    if origin in (list, tuple, Sequence):
        (item,) = typing.get_args(hint)[:1] or (str,)
        if isinstance(raw, str):
            raw = [part for part in (p.strip() for p in raw.split(",")) if part]
        if not isinstance(raw, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(raw).__name__}")
        converted = [_convert(v, item, where) for v in raw]
        return tuple(converted) if origin is tuple else converted
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "yes", "1", "on", "false", "no", "0"):
            return raw.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{where}: expected true or false, got {raw!r}")
    if hint is int:
        if isinstance(raw, bool):
            raise ConfigError(f"{where}: expected a whole number, got {raw!r}")
        try:
            if isinstance(raw, int):
                return raw
            return int(str(raw), 10)
        except ValueError:
            raise ConfigError(f"{where}: expected a whole number, got {raw!r}") from None
    if hint is float:
        if isinstance(raw, bool):
            raise ConfigError(f"{where}: expected a number, got {raw!r}")
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {raw!r}") from None
    if hint is str:
        if not isinstance(raw, str):
            raise ConfigError(f"{where}: expected a string, got {type(raw).__name__}")
        return raw
    if hint is Path:
        if not isinstance(raw, str | Path):
            raise ConfigError(f"{where}: expected a path, got {type(raw).__name__}")
        return Path(raw)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: expected a table")
        return from_mapping(hint, raw, where)
    raise ConfigError(f"{where}: unsupported setting type {hint!r}")
