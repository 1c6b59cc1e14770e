"""ICE candidates in SDP (RFC 8839 §5.1) and host candidates for the ICE-lite router.

An ICE-lite server (RFC 8445 §2.5) gathers nothing: it has one UDP port per worker and publishes
that address as a host candidate, then answers connectivity checks. Browsers may still include
their candidates (often mDNS ``.local`` names); the router only records them, since ICE-lite
never sends checks of its own.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

from router.sdp.errors import SdpError, SdpUsageError
from router.sdp.model import _clip

__all__ = ["HOST_TYPE_PREFERENCE", "Candidate", "host_candidate", "host_priority"]

HOST_TYPE_PREFERENCE: Final = 126
"""RFC 8445 §5.1.2.2 recommended type preference for host candidates."""


def host_priority(local_preference: int = 65535, component: int = 1) -> int:
    """RFC 8445 §5.1.2.1 priority; the defaults give the familiar 2130706431."""
    return (HOST_TYPE_PREFERENCE << 24) | (local_preference << 8) | (256 - component)


@dataclass(frozen=True, slots=True)
class Candidate:
    """``a=candidate:<foundation> <component> <transport> <priority> <addr> <port> typ <type> ...``.

    ``extensions`` keeps the trailing name/value pairs other than raddr/rport (``tcptype``,
    ``generation``, ``ufrag``, ``network-id``...) in order, so a parsed candidate writes back as
    it came.
    """

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str
    related_address: str | None = None
    related_port: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: str | None, line: int) -> Candidate:
        """Parse the attribute value (a leading ``candidate:`` from trickle JSON is tolerated)."""
        text = (value or "").strip()
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        parts = text.split()
        if len(parts) < 8 or parts[6] != "typ" or len(parts) % 2:
            raise SdpError(
                f"bad a=candidate value {_clip(text)}: expected '<foundation> <component> "
                "<transport> <priority> <address> <port> typ <type> [<name> <value>]...'",
                line,
            )
        numbers = []
        for text_value, what, high in (
            (parts[1], "component", 256),
            (parts[3], "priority", 2**32 - 1),
            (parts[5], "port", 65535),
        ):
            if not text_value.isascii() or not text_value.isdigit() or int(text_value) > high:
                raise SdpError(f"a=candidate {what} {_clip(text_value)} is not valid", line)
            numbers.append(int(text_value))
        related_address: str | None = None
        related_port: int | None = None
        extensions: list[tuple[str, str]] = []
        for name, ext_value in zip(parts[8::2], parts[9::2], strict=True):
            if name == "raddr":
                related_address = ext_value
            elif name == "rport" and ext_value.isascii() and ext_value.isdigit():
                related_port = min(int(ext_value), 65535)
            else:
                extensions.append((name, ext_value))
        return cls(
            parts[0], numbers[0], parts[2], numbers[1], parts[4], numbers[2], parts[7],
            related_address, related_port, tuple(extensions),
        )  # fmt: skip

    def value(self) -> str:
        """The attribute value."""
        out = [
            self.foundation, str(self.component), self.transport, str(self.priority),
            self.address, str(self.port), "typ", self.type,
        ]  # fmt: skip
        if self.related_address is not None:
            out += ["raddr", self.related_address]
        if self.related_port is not None:
            out += ["rport", str(self.related_port)]
        for name, ext_value in self.extensions:
            out += [name, ext_value]
        return " ".join(out)


def host_candidate(address: str, port: int, *, index: int = 0) -> Candidate:
    """A UDP host candidate for ``address:port``; ``index`` orders several (0 is preferred).

    The first gives ``1 1 udp 2130706431 <address> <port> typ host``; later ones get foundation
    ``index + 1`` and a lower local preference, so a browser tries them in the given order.
    """
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise SdpUsageError(f"host candidate address {address!r} is not an IP address") from None
    if not 1 <= port <= 65535:
        raise SdpUsageError(f"host candidate port {port} is out of range 1-65535")
    if not 0 <= index <= 65535:
        raise SdpUsageError(f"host candidate index {index} is out of range")
    return Candidate(str(index + 1), 1, "udp", host_priority(65535 - index), address, port, "host")
