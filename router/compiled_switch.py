"""The one switch for every compiled twin of the router's per-packet loops.

Why a module of its own: the twins live beside the code they mirror, in packages that must not
import each other (the RTP codec knows nothing of transports), yet a measurement of the
reference path has to turn all of them off at once. ``REGIO_FASTPATH=off`` does; it is read
when each module loads, as the router reads it at start.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ["ENV", "switched_off"]

ENV: Final = "REGIO_FASTPATH"
"""``off`` (or ``0``/``no``) forces the Python reference path."""


def switched_off() -> bool:
    """Whether ``REGIO_FASTPATH`` asks for the Python reference path."""
    return os.environ.get(ENV, "").lower() in ("off", "0", "no")
