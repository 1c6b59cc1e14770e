"""Start and stop a real local etcd: one member or a three-member cluster on loopback.

Used by ``regio cluster up`` and by every control-plane test (there is no mocked etcd). Each
member runs in its own process group so it can be stopped by pid, never by name; data lives in a
temporary directory removed on stop. Ports are picked free at start (or from ``base_port``), and
a member that fails to bind because another process took its port in the meantime is retried on
new ports, so tests can run beside anything else.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import trio

from control.etcd import EtcdClient, EtcdConfig, EtcdEndpoint, EtcdError

DEFAULT_BINARY = "/usr/bin/etcd"

_SETPRIV = shutil.which("setpriv")


class LocalEtcdError(RuntimeError):
    """The local etcd could not be started."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files for serving the client port over TLS (mutual TLS when ``client_cert_auth``)."""

    ca_cert: str
    """CA that signed the server certificate and the client certificates."""
    server_cert: str
    """Server certificate; must name 127.0.0.1 in its subjectAltName."""
    server_key: str
    """Private key of ``server_cert``."""
    client_cert_auth: bool = True
    """Require clients to present a certificate signed by ``ca_cert``."""


@dataclass(slots=True)
class Member:
    """One etcd member process and where it listens."""

    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    secure: bool
    process: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"
    """Address it listens on (a namespace host's, for ``regio cluster up --hosts``)."""

    @property
    def client_url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def die_with_parent(cmd: list[str]) -> list[str]:
    """``cmd`` wrapped so the kernel SIGKILLs it if its parent dies (Linux ``setpriv``).

    Children run in their own process group (so they can be signalled as a group), which
    also shields them from the terminal's Ctrl-C; if the parent is SIGKILLed it gets no chance
    to stop them, so the kernel does. ``setpriv`` sets the parent-death signal and then execs
    the command, so no Python runs between fork and exec (a ``preexec_fn`` would, and gRPC's
    fork handlers can hang such a child). The signal fires when the *thread* that forked
    exits, so callers spawn from the main thread, never from ``trio.to_thread`` workers.
    """
    if _SETPRIV is None:  # pragma: no cover - not Linux: rely on explicit stops
        return cmd
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *cmd]


def find_etcd_binary(path: str | None = None) -> str:
    """The etcd binary: ``path``, ``$REGIO_ETCD_BIN``, Debian's ``/usr/bin/etcd``, or PATH."""
    for candidate in (path, os.environ.get("REGIO_ETCD_BIN"), DEFAULT_BINARY):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("etcd")
    if found:
        return found
    raise LocalEtcdError(
        "no etcd binary found (install Debian's etcd-server or set REGIO_ETCD_BIN)"
    )


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback TCP ports that were free a moment ago."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _stop_process(process: subprocess.Popen[bytes], sig: int, grace: float) -> None:
    """Signal the process group, wait ``grace`` seconds, then SIGKILL the group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    else:
        # The leader is gone; make sure nothing it started lingers in its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


class LocalEtcd:
    """A local etcd cluster of ``size`` members (1 or 3 are the useful sizes)."""

    def __init__(
        self,
        size: int = 1,
        *,
        binary: str | None = None,
        base_dir: str | Path | None = None,
        base_port: int | None = None,
        tls: TlsFiles | None = None,
        heartbeat_ms: int = 100,
        election_ms: int = 1000,
    ) -> None:
        if size < 1:
            raise ValueError("an etcd cluster needs at least one member")
        self.size = size
        self.binary = find_etcd_binary(binary)
        self.tls = tls
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self._base_port = base_port
        self._own_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="regio-etcd-"))
        self.members: list[Member] = []
        self._token = f"regio-{os.getpid()}-{id(self):x}"

    # -- addresses --------------------------------------------------------------------------

    @property
    def client_urls(self) -> list[str]:
        return [m.client_url for m in self.members]

    @property
    def urls(self) -> str:
        """Comma-separated client URLs, as ``--etcd`` takes them."""
        return ",".join(self.client_urls)

    def config(self, *, timeout: float = 2.0, client_cert: str | None = None,
               client_key: str | None = None, user: str | None = None,
               password: str | None = None, secrets_key: str | None = None) -> EtcdConfig:
        """An :class:`EtcdConfig` reaching every member."""
        return EtcdConfig(
            tuple(EtcdEndpoint.parse(u) for u in self.client_urls),
            ca_cert=self.tls.ca_cert if self.tls else None,
            client_cert=client_cert,
            client_key=client_key,
            timeout=timeout,
            user=user,
            password=password,
            secrets_key=secrets_key,
        )

    @property
    def pids(self) -> list[int]:
        return [m.pid for m in self.members if m.pid is not None and m.running]

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, timeout: float = 20.0, *, client_cert: str | None = None,
                    client_key: str | None = None) -> None:
        """Start every member and wait until the cluster has a leader."""
        for attempt in range(3):
            self._plan(attempt)
            for member in self.members:
                self._launch(member)
            try:
                await self._wait_ready(timeout, client_cert, client_key)
                return
            except LocalEtcdError:
                self.stop(remove_data=False)
                if self._base_port is not None or attempt == 2:
                    raise
                # A port race with another process: new ports, new data dirs.
                for member in self.members:
                    shutil.rmtree(member.data_dir, ignore_errors=True)

    def _plan(self, attempt: int) -> None:
        if self._base_port is not None:
            ports = [self._base_port + i for i in range(2 * self.size)]
        else:
            ports = free_ports(2 * self.size)
        self.members = [
            Member(
                f"m{i}",
                ports[2 * i],
                ports[2 * i + 1],
                self.base_dir / f"m{i}-{attempt}",
                self.tls is not None,
            )
            for i in range(self.size)
        ]

    def _command(self, member: Member) -> list[str]:
        cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        cmd = [
            self.binary,
            f"--name={member.name}",
            f"--data-dir={member.data_dir}",
            f"--listen-client-urls={member.client_url}",
            f"--advertise-client-urls={member.client_url}",
            f"--listen-peer-urls={member.peer_url}",
            f"--initial-advertise-peer-urls={member.peer_url}",
            f"--initial-cluster={cluster}",
            "--initial-cluster-state=new",
            f"--initial-cluster-token={self._token}",
            f"--heartbeat-interval={self.heartbeat_ms}",
            f"--election-timeout={self.election_ms}",
            "--logger=zap",
            "--log-level=warn",
        ]
        if self.tls is not None:
            cmd += [
                f"--cert-file={self.tls.server_cert}",
                f"--key-file={self.tls.server_key}",
                f"--trusted-ca-file={self.tls.ca_cert}",
                f"--client-cert-auth={'true' if self.tls.client_cert_auth else 'false'}",
            ]
        return cmd

    def _launch(self, member: Member) -> None:
        member.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(member.data_dir.with_suffix(".log"), "ab")  # noqa: SIM115 - child owns it
        try:
            member.process = subprocess.Popen(
                die_with_parent(self._command(member)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    async def _wait_ready(self, timeout: float, cert: str | None, key: str | None) -> None:
        client = EtcdClient(self.config(timeout=1.0, client_cert=cert, client_key=key))
        try:
            with trio.move_on_after(timeout):
                while True:
                    for member in self.members:
                        if not member.running:
                            raise LocalEtcdError(
                                f"etcd member {member.name} exited: {self._log_tail(member)}"
                            )
                    try:
                        statuses = await client.status()
                    except EtcdError:
                        statuses = []
                    if len(statuses) == self.size and all(s.leader_id for s in statuses):
                        # A linearizable read proves a working quorum, not only an election.
                        with contextlib.suppress(EtcdError):
                            await client.get("regio-ready-probe")
                            return
                    await trio.sleep(0.05)
            raise LocalEtcdError(f"etcd did not become ready within {timeout} s")
        finally:
            client.close()

    def _log_tail(self, member: Member) -> str:
        try:
            text = member.data_dir.with_suffix(".log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-3:])[-400:]

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one member's process group (SIGKILL: crash it)."""
        process = self.members[index].process
        if process is not None and process.poll() is None:
            os.killpg(process.pid, sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                process.wait(timeout=10)

    def stop_member(self, index: int) -> None:
        """Stop one member cleanly (SIGTERM, then SIGKILL after 5 s)."""
        process = self.members[index].process
        if process is not None:
            _stop_process(process, signal.SIGTERM, 5.0)

    async def restart_member(self, index: int, timeout: float = 20.0) -> None:
        """Start a stopped member again on the same ports and data."""
        member = self.members[index]
        if member.running:
            return
        self._launch(member)
        deadline = trio.current_time() + timeout
        client = EtcdClient(EtcdConfig((EtcdEndpoint.parse(member.client_url),),
                                       ca_cert=self.tls.ca_cert if self.tls else None,
                                       timeout=1.0))
        try:
            while trio.current_time() < deadline:
                if not member.running:
                    raise LocalEtcdError(f"etcd {member.name} exited: {self._log_tail(member)}")
                statuses = await client.status()
                if statuses and statuses[0].leader_id:
                    return
                await trio.sleep(0.05)
        finally:
            client.close()
        raise LocalEtcdError(f"etcd {member.name} did not rejoin within {timeout} s")

    async def leader_index(self) -> int:
        """Index of the member that is the Raft leader now."""
        client = EtcdClient(self.config(timeout=1.0))
        try:
            for _ in range(100):
                statuses = await client.status()
                for status in statuses:
                    if status.leader_id and status.leader_id == status.member_id:
                        for i, member in enumerate(self.members):
                            if status.endpoint == member.client_url:
                                return i
                await trio.sleep(0.05)
        finally:
            client.close()
        raise LocalEtcdError("no leader found")

    def stop(self, *, remove_data: bool = True) -> None:
        """Stop every member (by process group) and remove the data it wrote."""
        for member in self.members:
            if member.process is not None:
                _stop_process(member.process, signal.SIGTERM, 5.0)
        if remove_data and self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    async def __aenter__(self) -> LocalEtcd:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def wait_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    """The pids among ``pids`` still alive after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.05)
    return alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie has exited; only its parent's wait is missing.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False
