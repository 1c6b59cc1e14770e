"""CPU time of processes and host counters from ``/proc`` (Linux), for the benchmarks' CPU
microseconds per packet and their noise figures (one module for every ``regio bench``).

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
_TICKS = _TICKS_PER_SECOND


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
    ticks = _host_ticks(proc)
    if len(ticks) < 8:
        return 0.0
    # user nice system idle iowait irq softirq steal (guest time is already in user).
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]
    return busy / _TICKS_PER_SECOND


def host_steal_cpu_seconds(proc: Path = Path("/proc")) -> float:
    """CPU seconds the hypervisor gave this machine's cores to other guests since boot (the
    ``steal`` column of ``/proc/stat``): time in which nothing here ran, whatever its priority,
    so every server's latency in such a window carries it."""
    ticks = _host_ticks(proc)
    return ticks[7] / _TICKS_PER_SECOND if len(ticks) >= 8 else 0.0


def _host_ticks(proc: Path) -> list[int]:
    try:
        first = (proc / "stat").read_text().splitlines()[0].split()
        return [int(v) for v in first[1:]]
    except (OSError, IndexError, ValueError):
        return []


def process_cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float:
    """User + system CPU seconds of ``pid`` (raises ProcessLookupError if it is gone)."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except FileNotFoundError as exc:
        raise ProcessLookupError(f"no process with pid {pid}") from exc
    fields = text[text.rindex(")") + 2 :].split()  # the name may contain spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS


def runqueue_wait_seconds(pid: int, proc: Path = Path("/proc")) -> float:
    """Seconds ``pid``'s threads were runnable but waiting for a CPU (``schedstat`` field 2,
    summed over ``/proc/PID/task/*``): on a shared machine this says whether a server lost
    packets to the scheduler, not to its own cost."""
    try:
        tasks = list((proc / str(pid) / "task").iterdir())
    except OSError:
        tasks = [proc / str(pid)]
    total = 0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


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


def process_udp_drops(pid: int, proc: Path = Path("/proc")) -> int:
    """Datagrams the kernel dropped on ``pid``'s UDP sockets (full receive queue), summed over
    its sockets' ``drops`` column in ``/proc/net/udp`` and ``udp6``. Unlike the host's
    ``RcvbufErrors`` this ignores other processes' sockets (the machine is shared)."""
    inodes = set()
    try:
        for fd in (proc / str(pid) / "fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return 0
    total = 0
    for table in ("udp", "udp6"):
        try:
            lines = (proc / str(pid) / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 13 and fields[9] in inodes:
                total += int(fields[12])
    return total


def pin(pid: int, cpus: set[int]) -> bool:
    """Restrict ``pid`` and all its threads to ``cpus`` when the machine has them; False when
    not possible. Threads it starts later inherit the mask."""
    available = os.sched_getaffinity(0)
    if not cpus <= available:
        return False
    try:
        tasks = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        tasks = [pid]
    try:
        for task in tasks:
            os.sched_setaffinity(task, cpus)
    except OSError:
        return False
    return True


__all__ = [
    "host_busy_cpu_seconds",
    "host_steal_cpu_seconds",
    "pin",
    "process_cpu_seconds",
    "process_name",
    "process_tree_cpu_seconds",
    "process_udp_drops",
    "runqueue_wait_seconds",
    "udp_rcvbuf_errors",
]
