"""Start a standalone ``regio router`` subprocess on loopback and stop it by pid.

The benchmark and the aiortc interop test both need a real router process (its own interpreter,
its own core, its CPU readable from ``/proc``) in standalone ``--token-key`` mode, so no etcd is
involved. The router prints one JSON ``ready`` line with its UDP and signaling addresses; we
wait for it rather than poll ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from control.schema import SecretKey

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The join-token key the router is started with (standalone mode; loopback only).
BENCH_KEY = SecretKey("bench", "YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldC1iZW5jaC1zZWNyZXQ", 0.0, None)
NODE_ID = "bench-router"


class RouterStartError(RuntimeError):
    """The router process did not come up (its stderr tail is in the message)."""


@dataclass(slots=True)
class RouterProcess:
    """A running router: its pid, UDP address and signaling URL (the first worker's, with
    ``--workers``; every worker's signaling URL and pid are in ``signaling_urls``/``pids``)."""

    process: subprocess.Popen[bytes]
    udp: tuple[str, int]
    signaling_url: str
    node_id: str = NODE_ID
    metrics_url: str = ""
    """``/metrics`` when started with ``--metrics``, else empty."""
    signaling_urls: list[str] = field(default_factory=list)
    #: The processes whose CPU is the router's: the one router, or the supervisor and workers.
    pids: list[int] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM (the router drains and exits), then SIGKILL by pid if it lingers; workers
        still alive after their supervisor are stopped by pid too."""
        stop_process(self.process, timeout)
        for pid in self.pids[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Stop one child by its pid: SIGTERM, wait, then SIGKILL."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    for stream in (process.stdout, process.stderr, process.stdin):
        if stream is not None:
            stream.close()


def child_env() -> dict[str, str]:
    """The environment for children: the repository importable, output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_router(region: str = "eu-west", *, timeout: float = 20.0,
                 extra_args: tuple[str, ...] = (), python: str = sys.executable,
                 prefix: tuple[str, ...] = (), workers: int = 1,
                 env: dict[str, str] | None = None) -> RouterProcess:
    """Start ``regio router --workers N`` on 127.0.0.1 (free ports) and wait for its (the
    node's) ready line; ``env`` adds variables (``REGIO_FASTPATH=off``).

    ``prefix`` runs the router under another program (``py-spy record -o F --``) for profiling.
    """
    command = [*prefix, python, "-c", "from control.cli import main; raise SystemExit(main())",
               "router", "--workers", str(workers), "--region", region, "--node-id", NODE_ID,
               "--token-key", f"{BENCH_KEY.kid}:{BENCH_KEY.secret}", "--listen", "127.0.0.1",
               "--udp-port", "0", "--signaling", "127.0.0.1:0", "--consent-timeout", "30",
               "--capacity", "10000", "--max-room-participants", "1000",
               "--message-rate", "1000", "--message-burst", "1000", *extra_args]
    # stderr goes to a file, not a pipe nobody reads during the run (a full pipe would block
    # the router mid-benchmark); its tail explains a failed start.
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed below on every path
    # Unbuffered: select() below sees the pipe, and a buffered reader could hold the node's
    # line (read along with a worker's) where select() never looks.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, bufsize=0,
                               env={**child_env(), **(env or {})}, cwd=REPO_ROOT)
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline and process.poll() is None:
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            line = process.stdout.readline()
            # With workers, each worker's ready line comes first, then the node's.
            if line.startswith(b"{") and (workers == 1 or b'"workers"' in line):
                break
            line = b""
    if not line.startswith(b"{"):
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait()
        errors.seek(0)
        tail = errors.read()[-2000:].decode(errors="replace")
        errors.close()
        process.stdout.close()
        raise RouterStartError(f"router did not start: {tail.strip() or 'no output'}")
    errors.close()  # the child keeps its own descriptor
    info = json.loads(line)
    nodes: list[dict[str, Any]] = info["workers"] if workers > 1 else [info]
    pids = [process.pid, *info.get("pids", [])]
    host, _, port = str(nodes[0]["udp"]).rpartition(":")
    return RouterProcess(process, (host, int(port)), str(nodes[0]["signaling"]),
                         metrics_url=str(nodes[0].get("metrics") or ""),
                         signaling_urls=[str(r["signaling"]) for r in nodes], pids=pids)


__all__ = ["BENCH_KEY", "NODE_ID", "RouterProcess", "RouterStartError", "child_env",
           "start_router", "stop_process"]
