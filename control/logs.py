"""Logging that never carries a raw client address.

Addresses are personal data (GDPR); even truncated ones are for some regulators, so they appear
only where needed and only truncated: IPv4 to its /24, IPv6 to its /48. Call sites use
:func:`truncate_address`; as a second line of defence every record passes through
:class:`AddressScrubbingFilter`, which truncates any address literal that slipped into a message.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import sys

IPV4_PREFIX = 24
IPV6_PREFIX = 48

_LOGGER_ROOT = "regio"

# Candidate address literals: dotted quads, and runs of hex groups with at least two colons.
# Each candidate is confirmed with ``ipaddress`` before it is rewritten, so times such as
# "12:30:00" survive.
_ADDRESS_CANDIDATE = re.compile(
    r"(?<![\w.:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?(?![\w.:/])"
    r"|(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w./])"
)


def truncate_address(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The loggable form of a client address: its /24 (IPv4) or /48 (IPv6) network.

    IPv4-mapped IPv6 addresses are truncated as the IPv4 address they carry, so the same client
    looks the same whichever socket family saw it. Anything unparsable becomes ``"invalid"``
    rather than being echoed back.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    except ValueError:
        return "invalid"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = IPV4_PREFIX if ip.version == 4 else IPV6_PREFIX
    network = ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
    return str(network)


def scrub_addresses(text: str) -> str:
    """Replace every IP address literal in ``text`` by its truncated network.

    Loopback and unspecified addresses are left alone: they identify no one, and operators need
    to see ``127.0.0.1:3478`` when a local cluster starts.
    """

    def replace(match: re.Match[str]) -> str:
        literal = match.group(0)
        try:
            ip = ipaddress.ip_address(literal)
        except ValueError:
            return literal
        if ip.is_loopback or ip.is_unspecified:
            return literal
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        if mapped is not None and (mapped.is_loopback or mapped.is_unspecified):
            return literal
        return truncate_address(ip)

    return _ADDRESS_CANDIDATE.sub(replace, text)


class AddressScrubbingFilter(logging.Filter):
    """Rewrites a record's final message so no raw address reaches any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = scrub_addresses(message)
        if scrubbed != message:
            record.msg = scrubbed
            record.args = None
        return True


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``regio`` hierarchy (``regio.turn.server``, ...)."""
    if name == _LOGGER_ROOT or name.startswith(_LOGGER_ROOT + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{_LOGGER_ROOT}.{name}")


def configure_logging(level: str | int = "INFO") -> None:
    """Send ``regio`` logs to stderr, scrubbed, one line per record. Idempotent."""
    root = logging.getLogger(_LOGGER_ROOT)
    root.setLevel(level)
    for handler in root.handlers:
        if getattr(handler, "_regio_handler", False):
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    handler.addFilter(AddressScrubbingFilter())
    handler._regio_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.propagate = False
