"""Configuration of ``regio frontdoor``: one documented dataclass for the TOML file and the CLI.

Every field is a ``--flag`` and a key of the ``[frontdoor]`` table of ``--config FILE``
(:mod:`control.config`), so ``--help`` and the file reference say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from control.config import setting

Policy = Literal["nearest", "eea"]
Size = Literal["small", "large"]


@dataclass(slots=True)
class FrontdoorConfig:
    """Everything ``regio frontdoor`` can be told."""

    listen: str = setting(
        "127.0.0.1:8443",
        doc="HOST:PORT to serve on; plain HTTP is only allowed on a loopback address",
    )
    tls_cert: str = setting("", doc="PEM certificate chain (enables HTTPS, TLS 1.2 minimum)")
    tls_key: str = setting("", doc="PEM private key for --tls-cert")
    trusted_proxy: list[str] = setting(
        default_factory=list,
        doc="CIDR of a reverse proxy whose forwarding header is believed",
    )
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = setting(
        "x-forwarded-for", doc="the header trusted proxies write: x-forwarded-for or forwarded"
    )
    geoip_db: str = setting("", doc="country database (default: the embedded ip-location-db)")
    geoip_check_interval: float = setting(
        5.0, doc="seconds between checks of the database file for changes (reloaded off-loop)"
    )
    default_policy: Policy = setting(
        "nearest", doc="policy of a room created without one: nearest or eea"
    )
    default_size: Size = setting(
        "large", doc="size of a join without one: large (mode sfu) or small (mode p2p)"
    )
    topology_from_etcd: bool = setting(
        True, doc="take jurisdictions and regions from etcd (else from --topology FILE)"
    )
    topology: str = setting("", doc="topology TOML used when --no-topology-from-etcd")
    token_ttl: int = setting(300, doc="seconds a join token stays valid")
    rejoin_window: int = setting(
        12 * 3600,
        doc="seconds after its expiry a previous join token still lets a participant rejoin "
        "the same room under the same id",
    )
    turn_ttl: int = setting(3600, doc="seconds TURN credentials stay valid")
    turn_servers: int = setting(2, doc="TURN nodes offered per join, nearest first")
    require_turn: bool = setting(
        True, doc="answer 503 when no allowed TURN node exists (else join without relays)"
    )
    rate_limit: float = setting(
        10.0, doc="joins per second allowed per client network (/24 IPv4, /48 IPv6)"
    )
    rate_burst: float = setting(40.0, doc="burst of joins a client network may make at once")
    room_rate: float = setting(
        0.2, doc="new rooms per second allowed per client network (/24 IPv4, /48 IPv6)"
    )
    room_burst: float = setting(10.0, doc="burst of new rooms a client network may create")
    pending_ttl: int = setting(
        30, doc="seconds a router assignment nobody connects to stays in etcd (min 5)"
    )
    probe_interval: float = setting(
        0.5, doc="seconds between the front door's health probes of each router (0: no probes, "
        "a dead router leaves with its lease)"
    )
    probe_failures: int = setting(
        2, doc="failed probes in a row, the last refused or unreachable, after which a router "
        "gets no joins until it answers (probes that connect but time out: this many plus two)"
    )
    probe_timeout: float = setting(1.0, doc="seconds a router has to answer a health probe")
    probe_connect_timeout: float = setting(
        0.5, doc="seconds a router's host has to complete a probe's TCP handshake before the "
        "probe counts as unreachable (a lost host)"
    )
    max_body: int = setting(4096, doc="largest join request body in bytes (413 beyond)")
    placement_timeout: float = setting(
        3.0, doc="seconds a new room's placement may wait on etcd before answering 503"
    )
    signaling_path: str = setting(
        "/v1/signal", doc="path of the routers' WebSocket signaling endpoint"
    )
    metrics_listen: str = setting(
        "", doc="HOST:PORT of the operators' listener (plain HTTP): /metrics and "
        "/v1/prometheus/targets; empty: none. The public join port never serves them"
    )
    access_log: bool = setting(False, doc="log every request (addresses truncated)")
    http_server: Literal["regio", "hypercorn"] = setting(
        "regio", doc="HTTP server: regio (own HTTP/1.1 server, joins on the fast path; "
        "default) or hypercorn (the library server, also HTTP/2)"
    )


__all__ = ["FrontdoorConfig", "Policy", "Size"]
