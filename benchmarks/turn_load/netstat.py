"""Where datagrams were dropped: the kernel's UDP receive-buffer overflow counters (Linux).

Both ends of a loopback benchmark share one kernel, so "lost" alone cannot say whether the
server or the generator fell behind. ``/proc/net/udp`` keeps a drop counter per socket, keyed by
inode, which attributes drops to the generator's own sockets; ``/proc/net/snmp`` counts every
receive-buffer overflow on the host, so the difference is (on a quiet benchmark host) the
server's.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterable
from pathlib import Path

_PROC_NET = Path("/proc/net")


def host_rcvbuf_errors(proc_net: Path = _PROC_NET) -> int:
    """UDP RcvbufErrors over IPv4 and IPv6 for this network namespace (0 if unreadable)."""
    total = 0
    try:
        lines = (proc_net / "snmp").read_text().splitlines()
        for header, values in itertools.pairwise(lines):
            if header.startswith("Udp:") and values.startswith("Udp:"):
                names, numbers = header.split()[1:], values.split()[1:]
                if "RcvbufErrors" in names and len(numbers) == len(names):
                    total += int(numbers[names.index("RcvbufErrors")])
                break
    except OSError:
        pass
    try:
        for line in (proc_net / "snmp6").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "Udp6RcvbufErrors":
                total += int(value.split()[0])
    except OSError:
        pass
    return total


def socket_inodes(sockets: Iterable[socket.socket]) -> set[int]:
    return {os.fstat(s.fileno()).st_ino for s in sockets}


def socket_drops(inodes: set[int], proc_net: Path = _PROC_NET) -> int:
    """Sum of the ``drops`` column of ``/proc/net/udp{,6}`` for the sockets with these inodes."""
    total = 0
    for name in ("udp", "udp6"):
        try:
            lines = (proc_net / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) >= 13 and int(parts[9]) in inodes:
                total += int(parts[-1])
    return total
