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

# Runs of characters an address literal is made of (hex digits, ':' and '.', with at least one
# ':' or '.'), with an optional zone and an optional prefix length. A run is only a *candidate*:
# :func:`_scrub_run` confirms it with ``ipaddress`` (trimming punctuation that merely follows or
# precedes the address) before anything is rewritten, so times such as "12:30:00" and versions
# such as "v1.2.3.4" survive.
_RUN = re.compile(
    r"[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]*(?P<zone>%[0-9A-Za-z_.-]+)?(?P<prefix>/[0-9]{1,3})?"
)
_IPV4_IN_RUN = re.compile(r"(?<![0-9.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9])(?!\.[0-9])")
_WORD_BEFORE = re.compile(r"[G-Zg-z]")
_IP_PREFIX_MAX = {4: IPV4_PREFIX, 6: IPV6_PREFIX}
_LONGEST_ADDRESS = len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")
_ADDRESS_SHAPE = re.compile(
    r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
    r"|(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|[0-9]{1,3}(?:\.[0-9]{1,3}){3})?"
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


def _keep(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback and unspecified addresses identify no one and are left as written."""
    if ip.is_loopback or ip.is_unspecified:
        return True
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return mapped is not None and (mapped.is_loopback or mapped.is_unspecified)


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _truncated(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: str | None) -> str:
    """The loggable form of ``ip``, or of ``ip/prefix``: a network at most as precise as the
    /24 or /48 (a coarser network is kept as it is)."""
    if prefix is None or (ip.version == 6 and ip.ipv4_mapped is not None):
        return truncate_address(ip)
    length = min(int(prefix[1:]), _IP_PREFIX_MAX[ip.version])
    try:
        return str(ipaddress.ip_network(f"{ip}/{length}", strict=False))
    except ValueError:
        return truncate_address(ip)


def _scrub_run(match: re.Match[str]) -> str:
    text = match.group(0)
    zone, prefix = match.group("zone"), match.group("prefix")
    run = text[: len(text) - len(zone or "") - len(prefix or "")]
    before = match.string[match.start() - 1 : match.start()] if match.start() else ""
    out: list[str] = []
    pos = 0
    while pos < len(run):
        # An address may follow a single ':' or dots ("peer:2001:db8::1", "...192.0.2.7"),
        # and be followed by punctuation and more text (end of a sentence, "addr:",
        # "addr.because" whose "beca" is hex, "addr:port"): the longest prefix of what is
        # left that parses is the address, and the rest is scanned again.
        lead = 0
        while run[pos + lead : pos + lead + 1] == ".":
            lead += 1
        colons = run[pos + lead : pos + lead + 3]
        if colons[:1] == ":" and (colons[1:2] != ":" or colons == ":::"):
            lead += 1  # "peer:192.0.2.7", "peer:2001:db8::1", "peer:::ffff:192.0.2.7"
        if pos == 0 and not lead and before and _WORD_BEFORE.match(before):
            return text  # part of a word ("v1.2.3.4")
        start = pos + lead
        found = _address_prefix(run[start : start + _LONGEST_ADDRESS + 1], len(run) - start)
        if found is None:
            # No address starts here; what is left may still hold IPv4 addresses.
            out.append(_IPV4_IN_RUN.sub(_scrub_ipv4, run[pos:]))
            pos = len(run)
            break
        candidate, ip = found
        at_end = start + len(candidate) == len(run)
        out.append(run[pos : pos + lead])
        out.append(candidate if _keep(ip) else _truncated(ip, prefix if at_end else None))
        pos += lead + len(candidate)
        if at_end and not _keep(ip):
            return "".join(out)  # the zone and the prefix length were part of the address
    return "".join(out) + (zone or "") + (prefix or "")


def _address_prefix(
    window: str, left: int
) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address] | None:
    """The longest prefix of ``window`` (the next characters of a run, ``left`` of them in
    all) that is an address ending where the run does or before a '.' or ':', with the
    address. Only prefixes an address can fill are tried, and the caller passes no more than
    that, so a long run costs no more per address than a short one."""
    whole = (window,) if left <= _LONGEST_ADDRESS else ()
    cuts = (window[:i] for i in range(min(len(window) - 1, _LONGEST_ADDRESS), 0, -1)
            if window[i] in ".:")
    for candidate in (*whole, *cuts):
        if not _ADDRESS_SHAPE.fullmatch(candidate):
            continue  # cheap refusal: parsing is the expensive part
        ip = _parse(candidate)
        if ip is not None:
            return candidate, ip
    return None


def _scrub_ipv4(match: re.Match[str]) -> str:
    ip = _parse(match.group(0))
    if ip is None or _keep(ip):
        return match.group(0)
    return truncate_address(ip)


def scrub_addresses(text: str) -> str:
    """Replace every IP address literal in ``text`` by its truncated network: bare, bracketed
    (``[2001:db8::1]:443``), with a port, a zone or a prefix length (``192.0.2.7/32`` becomes
    ``192.0.2.0/24``), inside quotes or followed by punctuation.

    Loopback and unspecified addresses are left alone: they identify no one, and operators need
    to see ``127.0.0.1:3478`` when a local cluster starts.
    """
    if "." not in text and ":" not in text:
        return text
    return _RUN.sub(_scrub_run, text)


class AddressScrubbingFilter(logging.Filter):
    """Rewrites a record so no raw address reaches any handler: its message, and the text of
    its exception and stack (``log.exception`` puts the exception's message, which often names
    an address, into the traceback text a handler's formatter adds)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = scrub_addresses(message)
        if scrubbed != message:
            record.msg = scrubbed
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            # Formatters print exc_text as it is; without exc_info none formats it again.
            record.exc_text = scrub_addresses(record.exc_text)
            record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub_addresses(record.stack_info)
        return True


def get_logger(name: str) -> logging.Logger:
    """A logger under the ``regio`` hierarchy (``regio.turn.server``, ...)."""
    if name == _LOGGER_ROOT or name.startswith(_LOGGER_ROOT + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{_LOGGER_ROOT}.{name}")


def configure_logging(level: str | int = "INFO") -> None:
    """Send ``regio`` logs to stderr, scrubbed, one line per record. Idempotent.

    The same handler also takes the records of other libraries' loggers (Hypercorn, Trio,
    asyncio...) when nothing else handles them: Python's last-resort handler would print them
    unscrubbed."""
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
    python_root = logging.getLogger()
    if not python_root.handlers:
        python_root.addHandler(handler)
