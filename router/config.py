"""Configuration of ``regio router``: one documented dataclass for the TOML ``[router]`` table
and the command-line flags (``control.config`` generates both)."""

from __future__ import annotations

from dataclasses import dataclass

from control.config import setting


@dataclass(slots=True)
class RouterConfig:
    """Everything ``regio router`` can be told."""

    region: str = setting("", doc="region this router serves (required)")
    listen: str = setting("127.0.0.1", doc="IP address of the media UDP port")
    udp_port: int = setting(0, doc="the one UDP port for every participant (0: any free port)")
    signaling: str = setting("", doc="WebSocket signaling listener HOST:PORT (default LISTEN:0)")
    metrics: str = setting("", doc="Prometheus /metrics listener HOST:PORT (empty: none)")
    node_id: str = setting("", doc="node id in etcd (default router-<region>-<udp port>)")
    public_ip: str = setting(
        "", doc="address put in ICE candidates and etcd (behind 1:1 NAT); default LISTEN"
    )
    host: str = setting("", doc="`regio cluster up` form: sets LISTEN (and signaling host)")
    port: int = setting(
        0, doc="`regio cluster up` form: UDP on PORT, signaling PORT+1, metrics PORT+2"
    )
    tls_cert: str = setting("", doc="PEM certificate chain: signaling becomes wss (TLS >= 1.2)")
    tls_key: str = setting("", doc="PEM private key for --tls-cert")
    token_key: list[str] = setting(
        default_factory=list,
        doc="KID:SECRET join-token key for use without etcd (secret as in etcd: base64url)",
    )
    capacity: int = setting(1000, doc="participants this router accepts (registered capacity)")
    workers: int = setting(
        0, doc="router processes on this node (0, the default: one per core this process may "
        "use); with more than one, each registers as router <node-id>-w<k> with its own ports "
        "and a share of --capacity"
    )
    max_room_participants: int = setting(100, doc="participants per SFU room")
    chat: bool = setting(True, doc="allow chat in new rooms unless the first joiner disables it")
    chat_rate: float = setting(2.0, doc="chat messages per second per participant")
    chat_burst: float = setting(10.0, doc="chat burst per participant")
    message_rate: float = setting(20.0, doc="signaling messages per second per connection")
    message_burst: float = setting(60.0, doc="signaling message burst per connection")
    max_message_bytes: int = setting(65536, doc="largest signaling message in bytes")
    reconnect_grace: float = setting(
        10.0, doc="seconds a participant keeps its media after its signaling connection drops"
    )
    join_timeout: float = setting(10.0, doc="seconds a connection has to send a valid join")
    consent_timeout: float = setting(30.0, doc="ICE consent timeout in seconds (RFC 7675)")
    udp_buffer: int = setting(
        1024 * 1024,
        doc="receive and send buffer bytes asked for on the media UDP port (Linux doubles it; "
        "forced past net.core.rmem_max when privileged). Bigger absorbs longer CPU stalls "
        "without loss but queues media longer behind them",
    )
    connect_timeout: float = setting(30.0, doc="seconds ICE+DTLS may take before giving up")
    drain_deadline: float = setting(300.0, doc="seconds a drain waits for sessions to end")
    lease_ttl: int = setting(10, doc="etcd lease TTL in seconds")
    trunk_cert: str = setting(
        "", doc="PEM certificate from the cluster CA naming this node: enables trunks to other "
        "routers (QUIC, mutual TLS 1.3)")
    trunk_key: str = setting("", doc="PEM private key for --trunk-cert")
    trunk_ca: str = setting("", doc="PEM cluster CA certificate that trunk peers must chain to")
    trunk_port: int = setting(0, doc="UDP port of the trunk QUIC listener (0: any free port)")
    trunk_paths: str = setting(
        "loss-aware", doc="trunk media paths: loss-aware (direct or one relay router, two "
        "paths above 2 %% loss) or direct (never relay; for comparisons)")
    loss_aware: bool = setting(
        True,
        doc="bandwidth feedback to publishers, estimates and simulcast layer choice per "
        "subscriber, proactive upstream NACK (off: plain forwarding with NACK from the cache; "
        "for side-by-side cost measurements)",
    )


__all__ = ["RouterConfig"]
