"""``--profile``: sample the router with py-spy during the run and summarise where time went.

py-spy attaches to the running router by pid (so the CPU figures stay the router's own) and
writes collapsed stacks (``frame;frame;frame count`` per line); :func:`summarise` turns them
into the top functions by self and by inclusive samples, which is what a reader acts on.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from benchmarks.sfu.router_proc import stop_process


class ProfileError(RuntimeError):
    """py-spy is missing or could not attach."""


def start(pid: int, path: Path, seconds: float, rate: int = 250) -> subprocess.Popen[bytes]:
    """Sample ``pid`` into ``path`` (collapsed stacks) for ``seconds`` (rounded up)."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        raise ProfileError("--profile needs py-spy (pip install py-spy)")
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking",
         "--duration", str(math.ceil(seconds)),
         "--format", "raw", "--output", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def finish(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """py-spy writes its file when its duration ends; wait for that, else stop it by pid."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        stop_process(process)


def _name(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file.py)"
    func, _, where = frame.partition(" (")
    return f"{func} ({Path(where.split(':')[0]).name})" if where else func


def summarise(path: Path, top: int = 15) -> dict[str, list[tuple[str, float]]]:
    """Top functions as percentages of all samples, by self and by inclusive time."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if not total:
        return {"self": [], "inclusive": []}
    return {
        "self": [(n, round(100 * c / total, 1)) for n, c in own.most_common(top)],
        "inclusive": [(n, round(100 * c / total, 1)) for n, c in inclusive.most_common(top)],
    }


__all__ = ["ProfileError", "finish", "start", "summarise"]
