"""Listener security: HTTPS with TLS 1.2 as the floor, plain HTTP only on loopback.

ARCHITECTURE.md §7: every HTTP listener speaks TLS 1.2 or newer; a TLS 1.0/1.1 handshake is
refused by the server, whatever the client offers. A join answer carries a signed token and
TURN credentials, so plain HTTP is only acceptable where nobody else can listen: a loopback
address (a local cluster, or a TLS-terminating proxy on the same host). Anything else without
``--tls-cert`` is refused at start with a clear error rather than served in the clear.
"""

from __future__ import annotations

import ipaddress
import ssl

from hypercorn.config import Config

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


class ListenError(ValueError):
    """A listen address that cannot be used as configured."""


def split_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``."""
    value = text.strip()
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
    else:
        host, sep, port = value.rpartition(":")
        if ":" in host:
            raise ListenError(f"{text!r}: write IPv6 addresses as [ADDRESS]:PORT")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ListenError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_plain_listen(host: str) -> None:
    """Refuse plain HTTP anywhere but loopback."""
    if not is_loopback_host(host):
        raise ListenError(
            f"refusing plain HTTP on {host}: it is not a loopback address. Give --tls-cert and "
            "--tls-key (HTTPS, TLS 1.2 minimum), or listen on 127.0.0.1/::1 behind a proxy."
        )


def server_context(cert: str, key: str, alpn: tuple[str, ...] = ("h2", "http/1.1")
                   ) -> ssl.SSLContext:
    """A server context: TLS 1.2+, no compression, no renegotiation, ``alpn`` protocols (h2
    and http/1.1 for Hypercorn; http/1.1 only for the front door's own server)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    context.set_alpn_protocols(list(alpn))
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ListenError(f"cannot load --tls-cert/--tls-key: {exc}") from None
    return context


class HypercornConfig(Config):
    """Hypercorn's config with our TLS context instead of its own."""

    tls_context: ssl.SSLContext | None = None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self.tls_context if self.ssl_enabled else None


__all__ = [
    "HypercornConfig",
    "ListenError",
    "check_plain_listen",
    "is_loopback_host",
    "server_context",
    "split_host_port",
]
