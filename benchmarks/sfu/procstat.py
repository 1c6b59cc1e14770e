"""CPU seconds of a process and the host's UDP receive-buffer drops, from ``/proc`` (Linux).

``/proc/PID/stat`` utime+stime (fields 14-15) cover every thread of the process; resolution is
one clock tick (10 ms), well under 1% of a multi-second window at tens of thousands of pps.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float:
    """User + system CPU seconds of ``pid`` (raises ProcessLookupError if it is gone)."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except FileNotFoundError as exc:
        raise ProcessLookupError(f"no process with pid {pid}") from exc
    fields = text[text.rindex(")") + 2 :].split()  # the name may contain spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS


def runqueue_wait_seconds(pid: int, proc: Path = Path("/proc")) -> float:
    """Seconds ``pid`` was runnable but waiting for a CPU (``/proc/PID/schedstat`` field 2):
    on a shared machine this says whether a server lost packets to the scheduler, not to
    its own cost."""
    try:
        return int((proc / str(pid) / "schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def host_busy_cpu_seconds(proc: Path = Path("/proc")) -> float:
    """CPU seconds all cores spent busy since boot (to show what other processes used)."""
    ticks = [int(v) for v in (proc / "stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICKS


def udp_rcvbuf_errors(proc: Path = Path("/proc")) -> int:
    """The host's UDP ``RcvbufErrors`` (datagrams dropped because a socket queue was full)."""
    try:
        lines = (proc / "net" / "snmp").read_text().splitlines()
    except OSError:
        return 0
    rows = [line.split() for line in lines if line.startswith("Udp:")]
    if len(rows) < 2 or "RcvbufErrors" not in rows[0]:
        return 0
    return int(rows[1][rows[0].index("RcvbufErrors")])


def pin(pid: int, cpus: set[int]) -> bool:
    """Restrict ``pid`` to ``cpus`` when the machine has them; False when not possible."""
    available = os.sched_getaffinity(0)
    if not cpus <= available:
        return False
    try:
        os.sched_setaffinity(pid, cpus)
    except OSError:
        return False
    return True


__all__ = [
    "host_busy_cpu_seconds",
    "pin",
    "process_cpu_seconds",
    "runqueue_wait_seconds",
    "udp_rcvbuf_errors",
]
