"""Start and stop the TURN servers a side-by-side run compares: Debian coturn and ``regio turn``.

Both listen on a free loopback port with a private relay port range, use TURN REST credentials
from one shared secret, and explicitly allow loopback peers (both deny them by default, rightly).
A server counts as up when it answers a STUN Binding request; it is stopped by its pid (SIGTERM,
then SIGKILL), never by name, so other servers on the machine are left alone.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.turn_load.session import LoadError
from turn.stun import (
    TRANSPORT_UDP,
    MessageClass,
    Method,
    RequestedTransport,
    Software,
    StunMessage,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServerProcess:
    """A TURN server we started: its pid is what ``--server-pid`` measures."""

    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    realm: str
    region: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the pid, SIGKILL it if it lingers; idempotent."""
        if self.process.poll() is not None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait(timeout=grace)
        except ProcessLookupError:
            pass


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_range(count: int, host: str = "127.0.0.1") -> tuple[int, int]:
    """``count`` consecutive UDP ports that are free right now (best effort, re-checked)."""
    rng = random.Random()
    for _ in range(50):
        low = rng.randrange(20000, 60000 - count)
        probes: list[socket.socket] = []
        try:
            for port in range(low, low + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                probes.append(sock)
                sock.bind((host, port))
            return low, low + count - 1
        except OSError:
            continue
        finally:
            for sock in probes:
                sock.close()
    raise LoadError(f"found no {count} consecutive free UDP ports on {host}")


def readiness_probe() -> bytes:
    """An unauthenticated Allocate: every TURN server answers it (401 with realm and nonce)
    and it creates no state. Binding is not enough, as a TURN-only node may ignore it; the
    SOFTWARE padding keeps the request larger than the 401, so anti-amplification rules let
    the answer through."""
    attrs = (
        RequestedTransport(TRANSPORT_UDP),
        Software("regio bench turn readiness probe".ljust(96, ".")),
    )
    message = StunMessage(Method.ALLOCATE, MessageClass.REQUEST, os.urandom(12), attrs)
    return message.encode(fingerprint=True)


def wait_until_answering(server: ServerProcess, timeout: float = 10.0) -> None:
    """Probe until the server answers STUN or its process dies."""
    request = readiness_probe()
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((server.host, server.port))
        sock.settimeout(0.1)
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise LoadError(
                    f"{server.name} exited with status {server.process.returncode} before "
                    f"answering; last log lines:\n{server.log_tail()}"
                )
            try:
                sock.send(request)
                sock.recv(2048)
                return
            except (TimeoutError, ConnectionRefusedError):
                time.sleep(0.05)
    server.stop()
    raise LoadError(f"{server.name} did not answer STUN on {server.target} within {timeout:.0f} s")


def start_coturn(
    secret: str,
    workdir: Path,
    *,
    pairs: int,
    realm: str = "regio",
    host: str = "127.0.0.1",
    relay_threads: int = 1,
) -> ServerProcess:
    """Debian ``turnserver`` (coturn 4.6) with one relay thread, REST auth, loopback peers."""
    binary = shutil.which("turnserver")
    if binary is None:
        raise LoadError("coturn is not installed (no `turnserver` on PATH; apt install coturn)")
    port = free_udp_port(host)
    low, high = free_port_range(4 * pairs + 64, host)
    log_path = workdir / "coturn.log"
    args = [
        binary,
        "-n",
        "--listening-ip", host,
        "--relay-ip", host,
        "--listening-port", str(port),
        "--min-port", str(low),
        "--max-port", str(high),
        "--use-auth-secret",
        "--static-auth-secret", secret,
        "--realm", realm,
        "--relay-threads", str(relay_threads),
        "--allow-loopback-peers",
        f"--allowed-peer-ip={host}",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--no-multicast-peers",
        "--log-file", "stdout",
        "--simple-log",
        "--pidfile", str(workdir / "turnserver.pid"),
        "--db", str(workdir / "turndb"),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
    server = ServerProcess("coturn", host, port, process, log_path, realm)
    wait_until_answering(server)
    return server


def regio_turn_command() -> list[str]:
    return [sys.executable, "-m", "control"]


def regio_turn_available() -> tuple[bool, str]:
    """Whether ``regio turn --help`` works yet (the TURN server is built in parallel)."""
    try:
        result = subprocess.run(
            [*regio_turn_command(), "turn", "--help"],
            capture_output=True,
            timeout=30,
            cwd=REPO_ROOT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"`regio turn --help` could not run: {exc}"
    if result.returncode != 0:
        return False, "`regio turn` does not exist yet (`regio turn --help` failed)"
    return True, result.stdout.decode(errors="replace")


def start_regio_turn(
    secret: str,
    workdir: Path,
    *,
    pairs: int,
    region: str = "local",
    realm: str = "regio",
    host: str = "127.0.0.1",
    help_text: str = "",
) -> ServerProcess:
    """``regio turn`` standalone on loopback with REST auth and 127.0.0.0/8 peers allowed."""
    port = free_udp_port(host)
    low, high = free_port_range(4 * pairs + 64, host)
    log_path = workdir / "regio-turn.log"
    args = [
        *regio_turn_command(),
        "turn",
        "--region", region,
        "--listen", f"{host}:{port}",
        "--auth-secret", secret,
        "--allow-peer", "127.0.0.0/8",
        "--relay-ports", f"{low}-{high}",
    ]  # fmt: skip
    if "--network-quota" in help_text:
        # Every load client comes from 127.0.0.1: one network holding all the allocations.
        args += ["--network-quota", str(2 * pairs + 64)]
    if "--realm" in help_text:
        args += ["--realm", realm]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
        )
    server = ServerProcess("regio turn", host, port, process, log_path, realm, region)
    wait_until_answering(server)
    return server
