"""Start Janus (Debian's ``janus``, VideoRoom) for ``--target janus`` in a namespace host.

libnice ignores loopback interfaces, so Janus cannot offer 127.0.0.1 as a candidate: it runs on
a namespace host of its own (:class:`control.netns.Network`, prefix ``sfub``, an address in
198.18.0.0/15). The load workers run on the same host and bind its address, so media takes the
kernel's local path exactly as with the router on loopback, and nothing leaves the namespace.
The configuration is the repository's ``infra/peers/janus/`` copied to a temporary folder
(``CONFDIR`` replaced). Janus is stopped by pid and the network deleted whatever happens.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.sfu.router_proc import REPO_ROOT
from control.netns import Host, NetnsError, Network

CONFIG_DIR = REPO_ROOT / "infra" / "peers" / "janus"
HTTP_URL = "http://127.0.0.1:8088/janus"


class JanusStartError(RuntimeError):
    """Janus or its namespace could not be set up (the reason is in the message)."""


@dataclass(slots=True)
class JanusProcess:
    process: subprocess.Popen[bytes]
    network: Network
    host: Host
    folder: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        """What the workers get as their target: the HTTP API and the address to bind."""
        return f"{HTTP_URL}|{self.host.address}"

    def prefix(self) -> list[str]:
        """Run a command on Janus's namespace host."""
        return self.host.command([])

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM by pid, SIGKILL if it lingers; then the network and the folder go."""
        try:
            if self.process.poll() is None:
                os.kill(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.kill(self.process.pid, signal.SIGKILL)
                    self.process.wait()
        finally:
            self.network.close()
            shutil.rmtree(self.folder, ignore_errors=True)


def _answers(host: Host) -> bool:
    probe = f"import urllib.request; urllib.request.urlopen('{HTTP_URL}/info', timeout=1)"
    result = subprocess.run(host.command([sys.executable, "-c", probe]), capture_output=True,
                            check=False)
    return result.returncode == 0


def start_janus(timeout: float = 60.0) -> JanusProcess:
    """Janus on a fresh namespace host, answering its HTTP API; JanusStartError otherwise."""
    binary = shutil.which("janus")
    if binary is None:
        raise JanusStartError("--target janus needs Debian's janus (make setup installs it)")
    network = Network("sfub")
    try:
        network.create()
        host = network.add_host("janus")
    except (NetnsError, OSError) as exc:
        network.close()
        raise JanusStartError(f"--target janus needs a namespace host (root): {exc}") from None
    folder = Path(tempfile.mkdtemp(prefix="sfubench-janus-"))
    for source in CONFIG_DIR.glob("*.jcfg"):
        (folder / source.name).write_text(source.read_text().replace("CONFDIR", str(folder)))
    with (folder / "janus.log").open("wb") as log:
        process = subprocess.Popen(host.command([binary, "-C", str(folder / "janus.jcfg"),
                                                 "-F", str(folder)]),
                                   stdout=log, stderr=subprocess.STDOUT)
    janus = JanusProcess(process, network, host, folder)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if _answers(host):
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


__all__ = ["HTTP_URL", "JanusProcess", "JanusStartError", "janus_version", "start_janus"]
