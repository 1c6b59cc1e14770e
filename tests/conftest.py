"""Suite-wide test settings.

Hypothesis runs without a per-example deadline: CI has two shared cores, and a slow example is
not a failure (tests never assert on wall-clock speed). ``derandomize`` under CI makes a red
build reproducible from its log.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings

from control.secretbox import ENV_VAR, write_key_file

settings.register_profile(
    "regio",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "regio"))


def _suite_secrets_key() -> None:
    """Secrets in etcd are sealed (control.secretbox): the suite runs with one secrets key file,
    as an operator's environment would, and every node process it starts inherits it. Tests of a
    missing or wrong key take it away explicitly."""
    if os.environ.get(ENV_VAR):
        return
    directory = tempfile.mkdtemp(prefix="regio-test-secrets-")
    atexit.register(shutil.rmtree, directory, True)
    os.environ[ENV_VAR] = str(write_key_file(Path(directory) / "secrets.key"))


_suite_secrets_key()
