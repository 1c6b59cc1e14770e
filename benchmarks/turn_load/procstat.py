"""CPU time of a server process tree from ``/proc`` (Linux), for CPU microseconds per packet.

``/proc/PID/stat`` fields 14-15 (utime, stime) already sum every thread of the process, including
threads that exited, so coturn's relay, listener and auth threads are all counted. A server that
forks workers (one process per core) is covered by adding its live descendants, found through
``/proc/PID/task/*/children``. Resolution is one clock tick (usually 10 ms); over a send window
of a few seconds at tens of thousands of packets per second that is well under 1%.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _own_ticks(pid: int, proc: Path) -> int:
    text = (proc / str(pid) / "stat").read_text()
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 overall)


def _children(pid: int, proc: Path) -> list[int]:
    kids: list[int] = []
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except OSError:
        return kids
    for task in tasks:
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def process_tree_cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float:
    """User plus system CPU seconds of ``pid`` and its live descendants.

    Raises :class:`ProcessLookupError` if ``pid`` itself does not exist (a wrong ``--server-pid``
    is an operator error worth reporting); descendants that exit mid-read are skipped.
    """
    try:
        ticks = _own_ticks(pid, proc)
    except FileNotFoundError as exc:
        raise ProcessLookupError(f"no process with pid {pid}") from exc
    seen = {pid}
    stack = _children(pid, proc)
    while stack:
        child = stack.pop()
        if child in seen:
            continue
        seen.add(child)
        try:
            ticks += _own_ticks(child, proc)
        except (OSError, ValueError):
            continue
        stack += _children(child, proc)
    return ticks / _TICKS_PER_SECOND


def process_name(pid: int, proc: Path = Path("/proc")) -> str:
    """The command name of ``pid`` (``turnserver``, ``python3``...), or ``?``."""
    try:
        return (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def host_busy_cpu_seconds(proc: Path = Path("/proc")) -> float:
    """CPU seconds every core spent busy (not idle or iowait) since boot, from ``/proc/stat``.

    Subtracting the server's and the generator's share over a window leaves what *other*
    processes used: on a shared machine that is the noise a reader needs to see.
    """
    try:
        first = (proc / "stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0.0
    ticks = [int(v) for v in first[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user).
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]
    return busy / _TICKS_PER_SECOND
