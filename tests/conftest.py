"""Suite-wide test settings.

Hypothesis runs without a per-example deadline: CI has two shared cores, and a slow example is
not a failure (tests never assert on wall-clock speed). ``derandomize`` under CI makes a red
build reproducible from its log.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "regio",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "regio"))
