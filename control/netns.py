"""Hosts made of Linux network namespaces on one private bridge: a lab network on one machine.

Multi-host behaviour (a router on its own address, a partition between two regions, a lossy
trunk link) needs more than processes on 127.0.0.1, yet tests and benches must never touch the
machine's real network. A :class:`Network` therefore builds everything inside namespaces it
creates itself: a *switch* namespace holding a bridge, and one namespace per host joined to the
bridge by a veth pair. Only the benchmarking range 198.18.0.0/15 is used: each network takes a
random /24 of it that no namespace on the machine uses yet, hosts get .1, .2, ... in creation
order.

Link impairments live in one nftables table of the bridge family inside the switch namespace:
every bridged packet between two hosts passes its ``forward`` chain, so loss and partitions
apply per directed host pair without touching the hosts' own stacks. The table *is* the state
(each rule's comment says what it is), so another process attached to the same network (``regio
cluster partition`` run from a second shell) sees and changes the same impairments.

Every name carries ``<prefix>-<random suffix>`` (namespaces ``rg-3f9a1c-eu-1``; bridge, veths
and the nftables table ``rg-3f9a1c-...``), the creating process records itself in
:data:`STATE_DIR`, and :meth:`Network.close` (also reached through ``with``/``async with`` when
the body fails) stops what it started inside the hosts and deletes every namespace, which
takes the veths, the bridge and the table with it. :func:`sweep_stale` removes networks whose
creator died without closing them. Everything here needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import trio

from control.localetcd import die_with_parent

BENCH_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
"""RFC 2544's benchmarking range: the only addresses a Network ever hands out."""
STATE_DIR = Path(os.environ.get("REGIO_NETNS_STATE", "/run/regio-netns"))
"""Where each live network records its creator's pid (for :func:`sweep_stale`)."""
DEFAULT_PREFIX = "rg"
MAX_HOSTS = 250
_IFNAMSIZ = 15
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
_CHAIN = "links"
_COMMENT_TAG = "regio"


class NetnsError(RuntimeError):
    """A namespace operation failed; the message names the command and its error output."""


class NotRootError(NetnsError):
    """Namespaces, bridges and nftables need root; raised before anything is created."""


def is_root() -> bool:
    return os.geteuid() == 0


def require_root(what: str = "namespace hosts") -> None:
    """Raise :class:`NotRootError` with an actionable message unless running as root."""
    if not is_root():
        raise NotRootError(
            f"{what} need root (network namespaces, a bridge and nftables): "
            "run as root, e.g. `sudo .venv/bin/regio ...`"
        )
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            raise NetnsError(f"`{tool}` not found: install iproute2 and nftables "
                             "(infra/scripts/system-packages.sh)")


def _run(cmd: Sequence[str], *, input_text: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(list(cmd), input=input_text, capture_output=True, text=True,
                          check=False)
    if check and proc.returncode != 0:
        raise NetnsError(f"`{' '.join(cmd)}` failed ({proc.returncode}): "
                         f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def list_namespaces() -> list[str]:
    """Names of the machine's named network namespaces (``ip netns list``)."""
    out = _run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def used_bench_subnets() -> set[ipaddress.IPv4Network]:
    """/24s of 198.18.0.0/15 with an address on any interface of any named namespace or root."""
    used: set[ipaddress.IPv4Network] = set()
    for ns in [None, *list_namespaces()]:
        cmd = ["ip", "-j", "-4", "addr", "show"] if ns is None else \
            ["ip", "-n", ns, "-j", "-4", "addr", "show"]
        try:
            links = json.loads(_run(cmd, check=False) or "[]")
        except json.JSONDecodeError:
            continue
        for link in links:
            for info in link.get("addr_info", []):
                addr = ipaddress.IPv4Address(info.get("local", "0.0.0.0"))
                if addr in BENCH_RANGE:
                    used.add(ipaddress.IPv4Network(f"{addr}/24", strict=False))
    return used


def pick_subnet(rng: random.Random | None = None) -> ipaddress.IPv4Network:
    """A random /24 inside 198.18.0.0/15 that no namespace on this machine uses."""
    used = used_bench_subnets()
    free = [net for net in BENCH_RANGE.subnets(new_prefix=24) if net not in used]
    if not free:
        raise NetnsError("every /24 of 198.18.0.0/15 is in use on this machine")
    choice = (rng or random.SystemRandom()).choice(free)
    assert isinstance(choice, ipaddress.IPv4Network)
    return choice


@dataclass(frozen=True, slots=True)
class Host:
    """One namespace host: its logical name, namespace, address and interface."""

    name: str
    netns: str
    address: str
    interface: str

    def command(self, cmd: Sequence[str]) -> list[str]:
        """``cmd`` run inside this host (``ip netns exec`` execs it: the pid is the command's)."""
        return ["ip", "netns", "exec", self.netns, *cmd]


@dataclass(frozen=True, slots=True)
class Impairment:
    """What happens to packets from ``src`` to ``dst`` (host names): ``loss`` percent dropped
    at random, or everything dropped while ``cut``. With ``min_bytes`` the loss hits only IP
    packets at least that long (media, not probes, NACKs or control)."""

    src: str
    dst: str
    loss: int = 0
    cut: bool = False
    min_bytes: int = 0


class Network:
    """A bridge in its own namespace plus namespace hosts on it; see the module docstring.

    Create with ``Network()`` and use as a context manager (sync or async), or call
    :meth:`create` and :meth:`close` yourself. :meth:`attach` rebuilds a handle to a network
    another process created (from :meth:`to_dict`), without owning it.
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX, *,
                 subnet: ipaddress.IPv4Network | str | None = None) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9]{0,3}", prefix):
            raise ValueError(f"prefix {prefix!r}: 1-4 lowercase letters/digits, letter first")
        self.name = f"{prefix}-{secrets.token_hex(3)}"
        """``<prefix>-<suffix>``: the start of every name this network creates."""
        self.subnet = ipaddress.IPv4Network(subnet) if subnet is not None else None
        self.hosts: dict[str, Host] = {}
        self.owned = True
        self.created = False
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    # ---------------------------------------------------------------- names
    @property
    def switch_netns(self) -> str:
        return f"{self.name}-sw"

    @property
    def bridge(self) -> str:
        return f"{self.name}-br"

    @property
    def table(self) -> str:
        return self.name

    def _ifname(self, tag: str) -> str:
        name = f"{self.name}-{tag}"
        assert len(name) <= _IFNAMSIZ, name
        return name

    # ---------------------------------------------------------------- lifecycle
    def create(self) -> Network:
        """Create the switch namespace, the bridge and the (empty) impairment table."""
        require_root()
        if self.created:
            return self
        if self.subnet is None:
            self.subnet = pick_subnet()
        if self.subnet.prefixlen != 24 or not self.subnet.subnet_of(BENCH_RANGE):
            raise ValueError(f"subnet {self.subnet} is not a /24 inside {BENCH_RANGE}")
        self.created = True  # from here on close() has something to undo
        try:
            self._record_owner()
            _run(["ip", "netns", "add", self.switch_netns])
            sw = ["ip", "-n", self.switch_netns]
            _run([*sw, "link", "set", "lo", "up"])
            _run([*sw, "link", "add", self.bridge, "type", "bridge"])
            _run([*sw, "link", "set", self.bridge, "up"])
            self._write_impairments({})
        except BaseException:
            self.close()
            raise
        return self

    def add_host(self, name: str) -> Host:
        """A new namespace host named ``name`` (e.g. ``eu-1``) with the next free address."""
        if not self.created:
            raise NetnsError("create() the network before adding hosts")
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"host name {name!r}: lowercase letters, digits and dashes")
        if name in self.hosts:
            raise ValueError(f"host {name!r} already exists")
        index = len(self.hosts) + 1
        if index > MAX_HOSTS:
            raise NetnsError(f"at most {MAX_HOSTS} hosts per network")
        assert self.subnet is not None
        address = str(self.subnet.network_address + index)
        host = Host(name, f"{self.name}-{name}", address, self._ifname(f"h{index}"))
        self.hosts[name] = host  # before creating it, so close() removes a half-made host
        peer = self._ifname(f"v{index}")
        _run(["ip", "netns", "add", host.netns])
        _run(["ip", "-n", self.switch_netns, "link", "add", peer, "type", "veth",
              "peer", "name", host.interface, "netns", host.netns])
        _run(["ip", "-n", self.switch_netns, "link", "set", peer, "master", self.bridge, "up"])
        inside = ["ip", "-n", host.netns]
        _run([*inside, "link", "set", "lo", "up"])
        _run([*inside, "addr", "add", f"{address}/24", "dev", host.interface])
        _run([*inside, "link", "set", host.interface, "up"])
        return host

    def add_hosts(self, names: Sequence[str]) -> list[Host]:
        return [self.add_host(n) for n in names]

    def close(self) -> None:
        """Stop the processes started here, then delete every namespace (veths, the bridge and
        the table go with them). Safe to call twice; does nothing for an attached handle."""
        if not self.owned or not self.created:
            return
        for pid in list(self._processes):
            self.stop(pid, grace=2.0)
        namespaces = [h.netns for h in self.hosts.values()] + [self.switch_netns]
        existing = set(list_namespaces())
        for ns in namespaces:
            if ns in existing:
                _kill_namespace_processes(ns)
                _run(["ip", "netns", "del", ns], check=False)
        with contextlib.suppress(FileNotFoundError):
            self._owner_file().unlink()
        self.created = False

    def __enter__(self) -> Network:
        return self.create()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> Network:
        return self.create()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        with trio.CancelScope(shield=True):
            self.close()

    def _owner_file(self) -> Path:
        return STATE_DIR / f"{self.name}.json"

    def _record_owner(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self._owner_file().write_text(json.dumps({"pid": os.getpid(), "name": self.name}))

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "subnet": str(self.subnet),
                "hosts": [{"name": h.name, "netns": h.netns, "address": h.address,
                           "interface": h.interface} for h in self.hosts.values()]}

    @classmethod
    def attach(cls, data: Mapping[str, Any]) -> Network:
        """A handle on a network another process created; :meth:`close` leaves it alone."""
        net = cls.__new__(cls)
        net.name = str(data["name"])
        net.subnet = ipaddress.IPv4Network(data["subnet"])
        net.hosts = {h["name"]: Host(h["name"], h["netns"], h["address"], h["interface"])
                     for h in data["hosts"]}
        net.owned = False
        net.created = True
        net._processes = {}
        if net.switch_netns not in list_namespaces():
            raise NetnsError(f"network {net.name} no longer exists")
        return net

    # ---------------------------------------------------------------- processes
    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise NetnsError(f"no host {name!r} (hosts: {', '.join(self.hosts)})") from None

    def popen(self, host: str | Host, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``cmd`` inside ``host`` in its own process group; the kernel kills it if this
        process dies. Call from the main thread (the parent-death signal follows the thread).
        Stop it with :meth:`stop` (by pid)."""
        h = host if isinstance(host, Host) else self.host(host)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("start_new_session", True)
        process: subprocess.Popen[bytes] = subprocess.Popen(
            die_with_parent(h.command(cmd)), **kwargs)
        self._processes[process.pid] = process
        return process

    async def run(self, host: str | Host, cmd: Sequence[str],
                  **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        """Run ``cmd`` inside ``host`` to completion without blocking Trio."""
        h = host if isinstance(host, Host) else self.host(host)
        kwargs.setdefault("capture_stdout", True)
        kwargs.setdefault("capture_stderr", True)
        return await trio.run_process(h.command(cmd), **kwargs)

    def stop(self, pid: int, *, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
        """Signal the process group ``pid`` leads; SIGKILL it if still alive after ``grace``."""
        stop_process_group(pid, sig=sig, grace=grace, process=self._processes.pop(pid, None))

    # ---------------------------------------------------------------- impairments
    def impairments(self) -> dict[tuple[str, str], Impairment]:
        """The current impairments, read back from the kernel's table."""
        out = _run(["ip", "netns", "exec", self.switch_netns, "nft", "-j", "list", "table",
                    "bridge", self.table])
        found: dict[tuple[str, str], Impairment] = {}
        for item in json.loads(out)["nftables"]:
            comment = item.get("rule", {}).get("comment", "")
            parts = comment.split(":")
            if len(parts) == 6 and parts[0] == _COMMENT_TAG:
                _, src, dst, loss, cut, min_bytes = parts
                found[(src, dst)] = Impairment(src, dst, int(loss), cut == "cut",
                                               int(min_bytes))
        return found

    def set_loss(self, a: str, b: str, percent: int, *, both_ways: bool = True,
                 min_bytes: int = 0) -> None:
        """Drop ``percent`` % of packets from ``a`` to ``b`` (and back, unless one way); with
        ``min_bytes``, only of IP packets at least that long."""
        if not 0 <= percent <= 100:
            raise ValueError(f"loss {percent} is not a percentage")
        if not 0 <= min_bytes <= 65535:
            raise ValueError(f"min_bytes {min_bytes} is not an IP packet length")
        self._update([(a, b)] + ([(b, a)] if both_ways else []),
                     lambda old: replace(old, loss=percent, min_bytes=min_bytes))

    def partition(self, a: str, b: str) -> None:
        """Cut every packet between hosts ``a`` and ``b`` (both ways); loss settings stay."""
        self._update([(a, b), (b, a)], lambda old: replace(old, cut=True))

    def heal(self, a: str, b: str) -> None:
        """Undo :meth:`partition` between ``a`` and ``b``; loss settings stay."""
        self._update([(a, b), (b, a)], lambda old: replace(old, cut=False))

    def heal_all(self) -> None:
        """Remove every partition and every loss setting."""
        self._write_impairments({})

    def _update(self, pairs: list[tuple[str, str]], change: Any) -> None:
        for a, b in pairs:
            self.host(a)
            self.host(b)
            if a == b:
                raise ValueError("a link needs two different hosts")
        current = self.impairments()
        for a, b in pairs:
            new = change(current.get((a, b), Impairment(a, b)))
            if new.loss == 0 and not new.cut:
                current.pop((a, b), None)
            else:
                current[(a, b)] = new
        self._write_impairments(current)

    def _write_impairments(self, rules: Mapping[tuple[str, str], Impairment]) -> None:
        """Replace the whole table in one nft transaction (no moment without the rules)."""
        t = f"bridge {self.table}"
        lines = [f"table {t} {{}}", f"delete table {t}", f"table {t} {{",
                 f"  chain {_CHAIN} {{ type filter hook forward priority 0; policy accept;"]
        for imp in sorted(rules.values(), key=lambda i: (i.src, i.dst)):
            src, dst = self.host(imp.src).address, self.host(imp.dst).address
            comment = (f"{_COMMENT_TAG}:{imp.src}:{imp.dst}:{imp.loss}:"
                       f"{'cut' if imp.cut else ''}:{imp.min_bytes}")
            match = f"ip saddr {src} ip daddr {dst}"
            if imp.cut:
                lines.append(f'    {match} drop comment "{comment}"')
            else:
                if imp.min_bytes:
                    match += f" ip length >= {imp.min_bytes}"
                lines.append(f"    {match} numgen random mod 100 < {imp.loss} drop "
                             f'comment "{comment}"')
        lines += ["  }", "}"]
        _run(["ip", "netns", "exec", self.switch_netns, "nft", "-f", "-"],
             input_text="\n".join(lines) + "\n")


def stop_process_group(pid: int, *, sig: int = signal.SIGTERM, grace: float = 5.0,
                       process: subprocess.Popen[bytes] | None = None) -> bool:
    """Send ``sig`` to process group ``pid``, SIGKILL it after ``grace`` s; True if it was alive.

    ``process`` (when this process started it) is reaped on the way, so no zombie stays."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(pid, process):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=2.0)
    return True


def _group_alive(pgid: int, process: subprocess.Popen[bytes] | None) -> bool:
    if process is not None and process.poll() is None:
        return True
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return not _is_zombie(pgid)


def _is_zombie(pid: int) -> bool:
    """A zombie still counts as a group member but is dead (its parent has not reaped it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _kill_namespace_processes(ns: str) -> None:
    """SIGKILL whatever still runs inside ``ns``, a namespace this module created (except this
    process, which may have entered it: see :func:`enter_host`)."""
    for raw in _run(["ip", "netns", "pids", ns], check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            if int(raw) != os.getpid():
                os.kill(int(raw), signal.SIGKILL)


def sweep_stale(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Delete networks under :data:`STATE_DIR` whose creating process is gone; their names."""
    removed: list[str] = []
    if not STATE_DIR.is_dir():
        return removed
    namespaces = list_namespaces()
    for path in STATE_DIR.glob(f"{prefix}-*.json"):
        try:
            record = json.loads(path.read_text())
            pid, name = int(record["pid"]), str(record["name"])
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            continue
        if pid_alive(pid):
            continue
        for ns in namespaces:
            if ns.startswith(f"{name}-"):
                _kill_namespace_processes(ns)
                _run(["ip", "netns", "del", ns], check=False)
        path.unlink(missing_ok=True)
        removed.append(name)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (0 and negative: never)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_CLONE_NEWNET = 0x40000000


def enter_host(netns_name: str) -> int:
    """Move the calling thread into namespace ``netns_name`` (``/run/netns/NAME``); returns a
    descriptor of the namespace it was in, for :func:`leave_host`.

    For a process that must itself talk to the hosts (``regio cluster up --hosts`` reaching its
    etcd, a benchmark driving clients): call it on the main thread before Trio or any library
    starts threads, since a thread keeps the namespace it was created in. Subprocesses
    inherit it. A process that entered a host another process owns must leave it before that
    owner deletes the host, which kills whatever still runs inside."""
    previous = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    fd = os.open(f"/run/netns/{netns_name}", os.O_RDONLY)
    try:
        _setns(fd, netns_name)
    except BaseException:
        os.close(previous)
        raise
    finally:
        os.close(fd)
    return previous


def leave_host(previous: int) -> None:
    """Back to the namespace :func:`enter_host` left (and close its descriptor)."""
    try:
        _setns(previous, "the previous namespace")
    finally:
        os.close(previous)


def _setns(fd: int, what: str) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"setns into {what}: {os.strerror(err)}")


@contextlib.contextmanager
def network(hosts: Sequence[str], prefix: str = DEFAULT_PREFIX) -> Iterator[Network]:
    """A network with ``hosts`` created, deleted on exit: ``with network(["a", "b"]) as net``."""
    with Network(prefix) as net:
        net.add_hosts(hosts)
        yield net
