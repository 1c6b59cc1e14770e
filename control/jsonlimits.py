"""JSON from untrusted peers, decoded with limits: every failure is one :class:`JsonRefused`.

``json.loads`` on a peer's bytes can fail in more ways than ``JSONDecodeError``: nesting deeper
than the interpreter's recursion limit raises ``RecursionError`` (a 4 KiB body of ``[`` is
enough), an integer literal of more than 4,300 digits raises a plain ``ValueError``
(CVE-2020-10735's limit), and bytes that are not UTF-8/16/32 raise ``UnicodeDecodeError``. Any
of these that escapes turns a client's malformed request into a 500 with a traceback (the
front door) or kills a signaling task (the router). :func:`loads_limited` turns all of them
into a precise refusal, and also refuses a decoded value nested deeper than ``max_depth``, so
a value accepted here cannot blow the stack later when it is encoded again (a relayed payload
is re-encoded for its receiver) or walked by a handler.

The depth is measured on the decoded value with an explicit stack (no recursion), after the
decoder has done its own bounded work: scanning the raw text for brackets would need to skip
string literals, which a regular expression does in quadratic time on crafted input.
"""

from __future__ import annotations

import json
from typing import Any, Final

DEFAULT_MAX_DEPTH: Final = 32
"""Enough for every message Regio defines (the deepest, a relayed ICE candidate, is 3)."""


class JsonRefused(ValueError):
    """A JSON text refused; ``reason`` is ``malformed``, ``encoding`` or ``too_deep``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def nesting_depth(value: Any, limit: int | None = None) -> int:
    """How deeply lists and dicts nest in a decoded JSON value (0 for a scalar). With
    ``limit``, the walk stops as soon as the depth exceeds it (and returns ``limit + 1``)."""
    if not isinstance(value, list | dict):
        return 0
    deepest = 1
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, list | dict):
                if depth + 1 > deepest:
                    deepest = depth + 1
                    if limit is not None and deepest > limit:
                        return deepest
                stack.append((child, depth + 1))
    return deepest


def loads_limited(data: str | bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Decode ``data`` (str, or bytes in UTF-8/16/32 as ``json.loads`` detects them), refusing
    nesting deeper than ``max_depth`` and every other failure with :class:`JsonRefused`."""
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise JsonRefused("malformed", f"not JSON ({exc.msg} at {exc.pos})") from None
    except UnicodeDecodeError:
        raise JsonRefused("encoding", "not UTF-8 text") from None
    except RecursionError:
        raise JsonRefused("too_deep", f"JSON nested too deeply (at most {max_depth})") from None
    except ValueError as exc:  # an integer literal over the interpreter's digit limit
        raise JsonRefused("malformed", f"not usable JSON ({str(exc)[:60]})") from None
    if nesting_depth(value, max_depth) > max_depth:
        raise JsonRefused("too_deep", f"JSON nested more than {max_depth} levels deep")
    return value


__all__ = ["DEFAULT_MAX_DEPTH", "JsonRefused", "loads_limited", "nesting_depth"]
