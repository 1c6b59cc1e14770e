"""Parsing ``--target HOST:PORT`` (``[v6]:PORT`` for IPv6) into a numeric address.

Resolved once, up front, so a typo is an operator error with one clear line instead of a socket
exception in the middle of setting up hundreds of allocations.
"""

from __future__ import annotations

import socket

from benchmarks.turn_load.session import LoadError


def parse_target(text: str) -> tuple[str, int]:
    """``"127.0.0.1:3478"``, ``"[::1]:3478"`` or ``"localhost:3478"`` -> (numeric host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text:
        raise LoadError(f"--target {text!r} is not HOST:PORT (e.g. 127.0.0.1:3478, [::1]:3478)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise LoadError(f"--target {text!r}: write an IPv6 address in brackets, [::1]:3478")
    try:
        port = int(port_text)
    except ValueError:
        raise LoadError(f"--target {text!r}: port {port_text!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise LoadError(f"--target {text!r}: port {port} is not in 1-65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise LoadError(f"--target {text!r}: cannot resolve {host!r} ({exc.strerror})") from None
    families = (socket.AF_INET, socket.AF_INET6)
    for family, _type, _proto, _name, sockaddr in infos:
        if family in families:
            return str(sockaddr[0]), port
    raise LoadError(f"--target {text!r}: {host!r} has no IPv4 or IPv6 address")
