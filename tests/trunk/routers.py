"""Real router processes with trunks, against a real etcd: start, read the ready line, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import trio

from control.cluster_ca import create_ca, issue_node_certificate
from tests.control.conftest import python_env

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RouterProc:
    node: str
    process: trio.Process
    ready: dict[str, str]

    @property
    def signaling(self) -> str:
        return self.ready["signaling"]

    def kill(self) -> None:
        if self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGKILL)


async def start_router(tmp: Path, etcd_urls: str, node: str, region: str,
                       lease_ttl: int = 3) -> RouterProc:
    create_ca(tmp / "ca")
    creds = issue_node_certificate(tmp / "ca", node, tmp / "ca" / "nodes")
    log = open(tmp / f"{node}.log", "ab")  # noqa: SIM115 - lives as long as the process
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "control", "router", "--workers", "1",
         "--etcd", etcd_urls, "--region", region,
         "--node-id", node, "--listen", "127.0.0.1", "--udp-port", "0",
         "--signaling", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
         "--lease-ttl", str(lease_ttl),
         "--trunk-cert", str(creds.cert), "--trunk-key", str(creds.key),
         "--trunk-ca", str(creds.ca)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=log, env=python_env(),
        cwd=str(REPO), start_new_session=True,
    )
    assert process.stdout is not None
    line = b""
    with trio.fail_after(40):
        while b"\n" not in line:
            chunk = await process.stdout.receive_some(4096)
            if not chunk:
                raise RuntimeError(f"router {node} exited: {(tmp / f'{node}.log').read_text()}")
            line += chunk
    return RouterProc(node, process, json.loads(line.split(b"\n")[0]))
