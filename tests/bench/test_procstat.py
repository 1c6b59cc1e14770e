"""CPU accounting from /proc covers the process and its children."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks.procstat import process_name, process_tree_cpu_seconds


def test_own_process_and_missing_pid() -> None:
    assert process_tree_cpu_seconds(os.getpid()) > 0
    assert process_name(os.getpid()).startswith(("python", "pytest"))
    with pytest.raises(ProcessLookupError):
        process_tree_cpu_seconds(999_999_999)


def test_children_are_counted() -> None:
    """A parent that only sleeps while its child spins: the tree's CPU is the child's."""
    code = (
        "import subprocess, sys; "
        "subprocess.run([sys.executable, '-c', "
        "'import time\\nend = time.process_time() + 0.3\\nwhile time.process_time() < end: pass"
        "\\ntime.sleep(30)'])"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        while process_tree_cpu_seconds(parent.pid) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_tree_cpu_seconds(parent.pid) >= 0.3
    finally:
        for child in _children(parent.pid):
            os.kill(child, 9)
        parent.kill()
        parent.wait()


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def test_kernel_drops_on_our_own_sockets_are_counted() -> None:
    """A tiny receive queue flooded from another socket: the kernel's drops on the sockets
    of this process show up, whatever other processes on the machine do."""
    import socket

    from benchmarks.procstat import process_udp_drops

    before = process_udp_drops(os.getpid())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as small, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        small.bind(("127.0.0.1", 0))
        for _ in range(200):
            sender.sendto(bytes(1000), small.getsockname())
        assert process_udp_drops(os.getpid()) - before > 100
    assert process_udp_drops(999_999_999) == 0
