"""What a benchmark figure was measured on, so RESULTS.md rows can be compared honestly."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe() -> dict[str, str | int]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def load_note() -> str:
    """How busy the machine was, measured rather than assumed: figures taken beside other work
    (a shared development machine) are only comparable as side-by-side ratios."""
    one, five, _ = os.getloadavg()
    return (f"load average {one:.2f} (1 min) / {five:.2f} (5 min) on {os.cpu_count() or 0} "
            "cores when recorded")
