"""``regio doctor``: checks a node's environment before (or while) it runs, with the fix for each
problem.

Every check turns what it observed into a :class:`Finding` through a pure function (``judge_*``:
numbers in, verdict and fix out), so the rules are tested without a broken machine; the probes
around them (binding a port, asking etcd, reading a certificate) touch the real thing.

Why these checks: a taken port or a missing address stops a node at start; an etcd it cannot
reach (or reaches without the right certificates) keeps it out of the cluster; a skewed clock
makes join tokens, TURN credentials and leases expire early or late; an old GeoIP database
misplaces clients (residency!); an expired certificate breaks every TLS client; small UDP
buffers drop media under bursts.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import socket
import ssl
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Listener:
    """A port a node wants: protocol ``udp`` or ``tcp``, host, port (0 = any)."""

    protocol: str
    host: str
    port: int
    owner: str
    """Which setting asks for it (for the message)."""


# ------------------------------------------------------------------------------- judges
def judge_port(listener: Listener, error: OSError | None) -> Finding:
    name = f"port {listener.protocol}/{listener.host}:{listener.port}"
    if error is None:
        return Finding(name, "ok", f"free ({listener.owner})")
    import errno

    if error.errno == errno.EADDRINUSE:
        return Finding(name, "fail", f"in use ({listener.owner})",
                       f"stop what holds it (`ss -{listener.protocol[0]}lpn "
                       f"'sport = :{listener.port}'`) or give {listener.owner} another port")
    if error.errno == errno.EADDRNOTAVAIL:
        return Finding(name, "fail", f"{listener.host} is not an address of this machine",
                       f"set {listener.owner} to one of this host's addresses (`ip -br addr`)")
    if error.errno == errno.EACCES:
        return Finding(name, "fail", "permission denied (a port below 1024)",
                       "use a port >= 1024, or grant CAP_NET_BIND_SERVICE")
    return Finding(name, "fail", str(error.strerror or error), "check the address and port")


def judge_clock(local_before: float, local_after: float, server_date: float,
                max_skew: float) -> Finding:
    """Skew against an HTTP ``Date`` (whole seconds): the local midpoint vs the middle of the
    server's second; the verdict allows for that half second and half the round trip."""
    skew = (local_before + local_after) / 2 - (server_date + 0.5)
    slack = 0.5 + (local_after - local_before) / 2
    detail = f"local clock {skew:+.1f} s vs etcd (±{slack:.1f} s)"
    if abs(skew) - slack > max_skew:
        return Finding("clock skew", "fail", detail,
                       "synchronise the clock (`timedatectl set-ntp true`, chrony or "
                       "systemd-timesyncd): tokens, TURN credentials and leases rely on it")
    return Finding("clock skew", "ok", detail)


def judge_geoip(path: str, build_epoch: int | None, now: float, max_age_days: float) -> Finding:
    if build_epoch is None:
        return Finding("geoip database", "fail", f"cannot read {path}",
                       "run `regio geo update` (or give the right --geoip-db)")
    age = (now - build_epoch) / 86400
    built = datetime.datetime.fromtimestamp(build_epoch, datetime.UTC).date().isoformat()
    detail = f"{Path(path).name} built {built} ({age:.0f} days old)"
    if age > max_age_days:
        return Finding("geoip database", "warn", detail + f", older than {max_age_days:g} days",
                       "run `regio geo update`: an old database misplaces clients whose "
                       "addresses moved (residency decisions depend on it)")
    return Finding("geoip database", "ok", detail)


def judge_certificate(path: str, not_after: datetime.datetime | None, now: datetime.datetime,
                      warn_days: float, error: str = "") -> Finding:
    name = f"certificate {Path(path).name}"
    if not_after is None:
        return Finding(name, "fail", f"cannot read {path}: {error}",
                       "point the setting at a PEM certificate")
    days = (not_after - now).total_seconds() / 86400
    detail = f"expires {not_after.date().isoformat()} ({days:.0f} days)"
    if days <= 0:
        return Finding(name, "fail", f"expired {-days:.0f} days ago",
                       "renew it (and reload the node): TLS clients refuse it")
    if days < warn_days:
        return Finding(name, "warn", detail, "renew it before it expires")
    return Finding(name, "ok", detail)


def judge_udp_buffers(rmem_max: int | None, wmem_max: int | None, wanted: int) -> Finding:
    if rmem_max is None or wmem_max is None:
        return Finding("udp buffers", "warn", "cannot read net.core.rmem_max/wmem_max",
                       "check /proc/sys/net/core (not Linux?)")
    detail = f"net.core.rmem_max={rmem_max}, wmem_max={wmem_max}; nodes ask for {wanted}"
    if min(rmem_max, wmem_max) < wanted:
        return Finding("udp buffers", "warn", detail,
                       f"sysctl -w net.core.rmem_max={wanted} net.core.wmem_max={wanted} "
                       "(and in /etc/sysctl.d/ to keep it): small buffers drop media in bursts "
                       "unless the node runs privileged")
    return Finding("udp buffers", "ok", detail)


def exit_status(findings: Iterable[Finding], strict: bool = False) -> int:
    """1 when any check failed (or warned, with ``strict``), else 0."""
    bad = {"fail", "warn"} if strict else {"fail"}
    return 1 if any(f.status in bad for f in findings) else 0


# ------------------------------------------------------------------------------- probes
def probe_port(listener: Listener) -> Finding:
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    kind = socket.SOCK_DGRAM if listener.protocol == "udp" else socket.SOCK_STREAM
    error: OSError | None = None
    with socket.socket(family, kind) as sock:
        if kind == socket.SOCK_STREAM:
            # As the node will: a socket left in TIME_WAIT by its last run is no problem.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((listener.host, listener.port))
        except OSError as exc:
            error = exc
    return judge_port(listener, error)


def probe_certificate(path: str, now: datetime.datetime, warn_days: float) -> Finding:
    try:
        cert = x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        return judge_certificate(path, None, now, warn_days, str(exc))
    return judge_certificate(path, cert.not_valid_after_utc, now, warn_days)


def probe_geoip(path: str, max_age_days: float) -> Finding:
    import maxminddb

    try:
        with maxminddb.open_database(path) as reader:
            epoch: int | None = int(reader.metadata().build_epoch)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError):
        epoch = None
    return judge_geoip(path, epoch, time.time(), max_age_days)


def probe_udp_buffers(wanted: int, proc: Path = Path("/proc/sys/net/core")) -> Finding:
    def read(name: str) -> int | None:
        try:
            return int((proc / name).read_text().strip())
        except (OSError, ValueError):
            return None

    return judge_udp_buffers(read("rmem_max"), read("wmem_max"), wanted)


def probe_clock(url: str, ssl_context: ssl.SSLContext | None, max_skew: float,
                timeout: float = 3.0) -> Finding:
    """Compare with the ``Date`` header of etcd's HTTP ``/version``."""
    before = time.time()
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/version", timeout=timeout,
                                    context=ssl_context) as response:
            date = response.headers.get("Date")
    except OSError as exc:
        return Finding("clock skew", "warn", f"cannot ask {url} for its time: {exc}",
                       "fix etcd reachability first")
    after = time.time()
    parsed = email.utils.parsedate_to_datetime(date) if date else None
    if parsed is None:
        return Finding("clock skew", "warn", f"{url} sent no Date header", "")
    return judge_clock(before, after, parsed.timestamp(), max_skew)


def etcd_ssl_context(ca: str | None, cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if ca is None:
        return None
    context = ssl.create_default_context(cafile=ca)
    if cert and key:
        context.load_cert_chain(cert, key)
    return context


# ------------------------------------------------------------------------------- node configs
def listeners_from_config(document: dict[str, Any]) -> list[Listener]:
    """The ports a node TOML file (``[router]``, ``[turn]``, ``[frontdoor]``) asks for."""
    out: list[Listener] = []

    def add(protocol: str, spec: str, owner: str) -> None:
        host, _, port = spec.rpartition(":")
        out.append(Listener(protocol, host.strip("[]"), int(port), owner))

    router = document.get("router", {})
    if router:
        host = router.get("host") or router.get("listen", "127.0.0.1")
        if router.get("port"):
            base = int(router["port"])
            out += [Listener("udp", host, base, "[router] port"),
                    Listener("tcp", host, base + 1, "[router] port+1 (signaling)"),
                    Listener("tcp", host, base + 2, "[router] port+2 (metrics)")]
        else:
            if router.get("udp_port"):
                out.append(Listener("udp", host, int(router["udp_port"]), "[router] udp_port"))
            for name in ("signaling", "metrics"):
                if router.get(name):
                    add("tcp", router[name], f"[router] {name}")
    turn = document.get("turn", {})
    for spec in turn.get("listen", []):
        add("udp", spec, "[turn] listen")
    for key in ("tcp_listen", "tls_listen"):
        for spec in turn.get(key, []):
            add("tcp", spec, f"[turn] {key}")
    if turn.get("metrics"):
        add("tcp", turn["metrics"], "[turn] metrics")
    frontdoor = document.get("frontdoor", {})
    if frontdoor.get("listen"):
        add("tcp", frontdoor["listen"], "[frontdoor] listen")
    return out


def certificates_from_config(document: dict[str, Any]) -> list[str]:
    return [str(document[s]["tls_cert"]) for s in ("router", "turn", "frontdoor")
            if document.get(s, {}).get("tls_cert")]


def geoip_from_config(document: dict[str, Any]) -> str | None:
    value = document.get("frontdoor", {}).get("geoip_db")
    return str(value) if value else None


def udp_buffer_from_config(document: dict[str, Any], default: int) -> int:
    return int(document.get("router", {}).get("udp_buffer", default))


def render_text(findings: Sequence[Finding]) -> list[str]:
    marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for f in findings:
        lines.append(f"[{marks[f.status]}] {f.check}: {f.detail}")
        if f.fix and f.status != "ok":
            lines.append(f"       fix: {f.fix}")
    bad = [f for f in findings if f.status != "ok"]
    lines.append(f"{len(findings)} checks, {sum(f.status == 'fail' for f in bad)} failed, "
                 f"{sum(f.status == 'warn' for f in bad)} warnings")
    return lines


def render_json(findings: Sequence[Finding], status: int) -> str:
    return json.dumps({"status": status, "findings": [f.to_json() for f in findings]})
