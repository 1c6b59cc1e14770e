"""Start Janus (Debian's ``janus``, VideoRoom) for ``--target janus`` in a namespace of its own.

libnice ignores loopback interfaces, so Janus cannot offer 127.0.0.1 as a candidate: it runs in
a network namespace the bench creates (``sfub-<random>``) with a veth pair whose one end holds
:data:`ADDRESS` (in 198.18.0.0/15, the benchmarking range). The load workers run in the same
namespace and bind that address, so media goes through the kernel's local path exactly as with
the router on loopback, and nothing leaves the namespace. The configuration is the repository's
``infra/peers/janus/`` copied to a temporary folder (``CONFDIR`` replaced). Janus is stopped by
pid and the namespace deleted whatever happens.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.sfu.router_proc import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "infra" / "peers" / "janus"
ADDRESS = "198.18.71.1"
HTTP_URL = "http://127.0.0.1:8088/janus"


class JanusStartError(RuntimeError):
    """Janus or its namespace could not be set up (the reason is in the message)."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode:
        raise JanusStartError(f"ip {' '.join(args)}: {result.stderr.strip()}")


@dataclass(slots=True)
class JanusProcess:
    process: subprocess.Popen[bytes]
    netns: str
    folder: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        """What the workers get as their target: the HTTP API and the address to bind."""
        return f"{HTTP_URL}|{ADDRESS}"

    def prefix(self) -> list[str]:
        """Run a command inside Janus's namespace."""
        return ["ip", "netns", "exec", self.netns]

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM by pid, SIGKILL if it lingers; then the namespace and the folder go."""
        try:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.kill(self.process.pid, signal.SIGKILL)
                    self.process.wait()
        finally:
            delete_namespace(self.netns)
            shutil.rmtree(self.folder, ignore_errors=True)


def create_namespace() -> str:
    """A namespace with loopback up and :data:`ADDRESS` on one end of a veth pair."""
    suffix = secrets.token_hex(3)
    name = f"sfub-{suffix}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", f"sfuba{suffix}", "type", "veth", "peer", "name",
            f"sfubb{suffix}")
        _ip("-n", name, "addr", "add", f"{ADDRESS}/24", "dev", f"sfuba{suffix}")
        _ip("-n", name, "link", "set", f"sfuba{suffix}", "up")
        _ip("-n", name, "link", "set", f"sfubb{suffix}", "up")
    except JanusStartError:
        delete_namespace(name)
        raise
    return name


def delete_namespace(name: str) -> None:
    """Delete the namespace (its veth pair goes with it)."""
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def _answers(netns: str) -> bool:
    probe = f"import urllib.request; urllib.request.urlopen('{HTTP_URL}/info', timeout=1)"
    result = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", probe],
                            capture_output=True, check=False)
    return result.returncode == 0


def start_janus(timeout: float = 20.0) -> JanusProcess:
    """Janus in a fresh namespace, answering its HTTP API; JanusStartError otherwise."""
    binary = shutil.which("janus")
    if binary is None:
        raise JanusStartError("--target janus needs Debian's janus (make setup installs it)")
    if os.geteuid() != 0:
        raise JanusStartError("--target janus needs root (it creates a network namespace)")
    folder = Path(tempfile.mkdtemp(prefix="sfubench-janus-"))
    for source in CONFIG_DIR.glob("*.jcfg"):
        text = source.read_text().replace("CONFDIR", str(folder))
        (folder / source.name).write_text(text)
    netns = create_namespace()
    log = (folder / "janus.log").open("wb")
    process = subprocess.Popen(["ip", "netns", "exec", netns, binary, "-C",
                                str(folder / "janus.jcfg"), "-F", str(folder)],
                               stdout=log, stderr=subprocess.STDOUT)
    log.close()
    janus = JanusProcess(process, netns, folder)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if _answers(netns):
            return janus
        time.sleep(0.2)
    tail = (folder / "janus.log").read_text(errors="replace")[-1500:]
    janus.stop()
    raise JanusStartError(f"janus did not answer on {HTTP_URL}: {tail.strip() or 'no output'}")


def janus_version() -> str:
    """``janus --version``'s first line, for the report."""
    binary = shutil.which("janus")
    if binary is None:
        return "janus (not installed)"
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else "janus"


__all__ = ["ADDRESS", "HTTP_URL", "JanusProcess", "JanusStartError", "create_namespace",
           "delete_namespace", "janus_version", "start_janus"]
