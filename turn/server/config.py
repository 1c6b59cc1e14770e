"""Configuration of a TURN node: one documented dataclass for the TOML file and the CLI.

The core reads the protocol, quota and policy fields; the drivers read the listener fields. One
dataclass keeps ``--help``, the TOML reference and the code in step (``control.config``).
"""

from __future__ import annotations

from dataclasses import dataclass

from control.config import setting


@dataclass(slots=True)
class TurnConfig:
    """Everything ``regio turn`` can be told, with the defaults an operator of coturn expects."""

    region: str = setting("", doc="region this node serves; REST usernames must name it")
    realm: str = setting(
        "regio",
        doc="long-term credential realm; kept short because it is in every 401 challenge",
    )
    software: str = setting("regio-turn", doc="SOFTWARE attribute on authenticated responses")
    listen: list[str] = setting(
        default_factory=list, doc="UDP listener HOST:PORT (default 127.0.0.1:3478)"
    )
    tcp_listen: list[str] = setting(default_factory=list, doc="TCP listener HOST:PORT")
    tls_listen: list[str] = setting(default_factory=list, doc="TLS listener HOST:PORT")
    tls_cert: str = setting("", doc="PEM certificate chain for the TLS listeners")
    tls_key: str = setting("", doc="PEM private key for the TLS listeners")
    relay_ports: str = setting("49152-65535", doc="relay port range LOW-HIGH (inclusive)")
    relay_ip: str = setting(
        "", doc="IPv4 address relays bind to (default: the first listener's host or 127.0.0.1)"
    )
    relay_ip6: str = setting("", doc="IPv6 address relays bind to; empty disables IPv6 relays")
    external_ip: str = setting(
        "", doc="IPv4 address advertised in XOR-RELAYED-ADDRESS (behind 1:1 NAT); default relay-ip"
    )
    auth_secret: list[str] = setting(
        default_factory=list,
        doc="TURN REST shared secret (coturn's static-auth-secret); repeat during a rotation",
    )
    accept_unbound_rest_usernames: bool = setting(
        False,
        doc="also accept coturn's plain '<expiry>:<user>' REST usernames (no region binding)",
    )
    allow_peer: list[str] = setting(
        default_factory=list, doc="CIDR a peer may be in despite the deny table"
    )
    rfc5766_channels: bool = setting(
        True,
        doc="accept channel numbers 0x5000-0x7FFF too (RFC 5766's range, which coturn's clients "
        "use); RFC 8656 reserves them only for ports shared with DTLS/RTP, which TURN's are not",
    )
    default_lifetime: int = setting(600, doc="allocation lifetime without LIFETIME (s)")
    max_lifetime: int = setting(3600, doc="cap on a requested allocation lifetime (s)")
    permission_lifetime: int = setting(300, doc="permission lifetime (s), RFC 8656 fixes 300")
    channel_lifetime: int = setting(600, doc="channel binding lifetime (s), RFC 8656 fixes 600")
    nonce_lifetime: int = setting(600, doc="seconds a nonce stays valid before 438 Stale Nonce")
    user_quota: int = setting(10, doc="allocations per username (486 beyond)")
    network_quota: int = setting(
        100,
        doc="allocations per client network, /24 or /48 (486 beyond): usernames are minted per "
        "join, so only this bounds what one network can hold",
    )
    total_quota: int = setting(10000, doc="allocations on this node (508 beyond)")
    max_bps: int = setting(0, doc="bandwidth cap per allocation in bytes/s each way (0: none)")
    auth_fail_burst: int = setting(20, doc="failed authentications per /24 or /48 before limiting")
    auth_fail_rate: float = setting(1.0, doc="failed authentications per second refilled")
    udp_amplification_factor: int = setting(
        3,
        doc="before a UDP source authenticates, answers to it stay within this many times the "
        "bytes received from it (3 as in QUIC, RFC 9000 8.1: a first Allocate or Binding is "
        "answered at once; 1 makes clients whose first request is smaller than the 401 wait "
        "for their retransmission)",
    )
    udp_challenge_slack: int = setting(
        0,
        doc="extra bytes each unauthenticated UDP source's answer budget starts with, on top of "
        "--udp-amplification-factor (0: the factor is an exact bound). An explicit loosening",
    )
    unauth_budget_ttl: float = setting(
        30.0, doc="seconds an unauthenticated source's byte budget is kept after its last request"
    )
    unauth_budget_sources: int = setting(
        65536, doc="unauthenticated sources whose byte budget is tracked (least recent forgotten)"
    )
    metrics: str = setting("", doc="serve Prometheus metrics on HOST:PORT")
    node_id: str = setting("", doc="node id in etcd (default turn-<region>-<port>)")
    drain_deadline: float = setting(300.0, doc="seconds a drain waits for allocations to end")
    lease_ttl: int = setting(10, doc="etcd lease TTL in seconds (with --etcd)")
    etcd_endpoints: list[str] = setting(
        default_factory=list, doc="etcd HOST:PORT endpoints peers may never be (set from --etcd)"
    )


__all__ = ["TurnConfig"]
