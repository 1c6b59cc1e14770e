from __future__ import annotations

import io
import ipaddress
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.logs import (
    AddressScrubbingFilter,
    configure_logging,
    get_logger,
    scrub_addresses,
    truncate_address,
)


def test_truncates_ipv4_to_slash_24() -> None:
    assert truncate_address("203.0.113.77") == "203.0.113.0/24"


def test_truncates_ipv6_to_slash_48() -> None:
    assert truncate_address("2001:db8:1234:5678::1") == "2001:db8:1234::/48"


def test_ipv4_mapped_ipv6_truncates_as_ipv4() -> None:
    assert truncate_address("::ffff:198.51.100.9") == "198.51.100.0/24"


def test_invalid_address_is_not_echoed() -> None:
    assert truncate_address("not-an-ip 203.0.113.7") == "invalid"


@given(st.ip_addresses(v=4))
def test_ipv4_truncation_keeps_only_the_network(ip: ipaddress.IPv4Address) -> None:
    network = ipaddress.ip_network(truncate_address(ip))
    assert network.prefixlen == 24
    assert ip in network


@given(st.ip_addresses(v=6))
def test_ipv6_truncation_keeps_only_the_network(ip: ipaddress.IPv6Address) -> None:
    network = ipaddress.ip_network(truncate_address(ip))
    if ip.ipv4_mapped is not None:
        assert network.prefixlen == 24
    else:
        assert network.prefixlen == 48
        assert ip in network


@given(st.ip_addresses())
def test_scrubbing_leaves_no_raw_routable_address(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    text = f"client {ip} port 5000 [{ip}]:443 ip={ip}"
    scrubbed = scrub_addresses(text)
    if ip.is_loopback or ip.is_unspecified:
        return
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None and (mapped.is_loopback or mapped.is_unspecified):
        return
    assert truncate_address(ip) in scrubbed
    for token in scrubbed.replace("[", " ").replace("]", " ").replace("=", " ").split():
        token = token.rsplit(":", 1)[0] if token.count(":") == 1 else token
        try:
            found = ipaddress.ip_address(token)
        except ValueError:
            continue
        assert found != ip


def test_scrubbing_keeps_times_versions_and_loopback() -> None:
    text = "at 12:30:00 v1.2.3.4 listening on 127.0.0.1:3478 and [::1]:3478"
    assert scrub_addresses(text) == text


def test_logged_records_are_scrubbed() -> None:
    record = logging.LogRecord(
        "regio.t", logging.INFO, __file__, 1, "from %s", ("192.0.2.55",), None
    )
    AddressScrubbingFilter().filter(record)
    assert record.getMessage() == "from 192.0.2.0/24"


def test_configure_logging_is_idempotent() -> None:
    configure_logging("DEBUG")
    configure_logging("INFO")
    root = logging.getLogger("regio")
    assert sum(1 for h in root.handlers if getattr(h, "_regio_handler", False)) == 1
    assert get_logger("turn.server").name == "regio.turn.server"
    assert get_logger("regio.x").name == "regio.x"


# --- issue 15 item 3: every form an address takes in a log line -----------------------------

def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(ip, "ipv4_mapped", None)
    return not (ip.is_loopback or ip.is_unspecified
                or (mapped is not None and (mapped.is_loopback or mapped.is_unspecified)))


def _leaks(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> bool:
    """True if ``text`` still holds ``ip`` (its network address, which the truncated form
    itself starts with, does not count)."""
    network = ipaddress.ip_network(truncate_address(ip))
    mapped = getattr(ip, "ipv4_mapped", None)
    if network.network_address in (ip, mapped):
        return False
    forms = {str(ip), ip.exploded}
    if mapped is not None:
        forms.add(str(mapped))
    return any(form in text for form in forms)


@pytest.mark.parametrize(("text", "scrubbed"), [
    ("from 198.51.100.9.", "from 198.51.100.0/24."),
    ("from 198.51.100.9...", "from 198.51.100.0/24..."),
    ("peer 2a00:1450:4001:81b::200e: refused", "peer 2a00:1450:4001::/48: refused"),
    ("peer 2a00:1450::1.", "peer 2a00:1450::/48."),
    ("peer 2a00:1450::1.because", "peer 2a00:1450::/48.because"),
    ("peer:2a00:1450::1", "peer:2a00:1450::/48"),
    ("net 198.51.100.9/32", "net 198.51.100.0/24"),
    ("net 198.51.100.9/28 and 8.0.0.0/8", "net 198.51.100.0/24 and 8.0.0.0/8"),
    ("net 2a00:1450:4001:81b::200e/128", "net 2a00:1450:4001::/48"),
    ("[2a00:1450:4001:81b::200e]:443", "[2a00:1450:4001::/48]:443"),
    ("[2a00:1450:4001:81b:1:2:3:4]:443,", "[2a00:1450:4001::/48]:443,"),
    ("[::ffff:198.51.100.9]:80", "[198.51.100.0/24]:80"),
    ("('198.51.100.9', 3478)", "('198.51.100.0/24', 3478)"),
    ("host:198.51.100.9:3478", "host:198.51.100.0/24:3478"),
    ("fe80::1234%eth0 said", "fe80::/48 said"),
])
def test_address_forms_are_truncated(text: str, scrubbed: str) -> None:
    assert scrub_addresses(text) == scrubbed


_punctuation = ["", " ", ".", "...", ",", ";", ":", "!", "?", ")", "(", "'", '"', "[", "]",
                "=", "\n", "-", "_", "<", ">", "{", "}", "peer:", "ip="]
_before = st.sampled_from(_punctuation)
_after = st.sampled_from([*_punctuation, "/32", "/128", "/7", ".because", ": refused",
                          "%eth0", ":443", "]:443", ".Conn"])


@settings(max_examples=300)
@given(st.ip_addresses().filter(_public), _before, _after)
def test_no_address_survives_any_punctuation(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, before: str, after: str
) -> None:
    text = f"x {before}{ip}{after} y"
    assert not _leaks(ip, scrub_addresses(text)), (text, scrub_addresses(text))


def _record_text(record: logging.LogRecord) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(AddressScrubbingFilter())
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.handle(record)
    return stream.getvalue()


def test_exception_text_is_scrubbed() -> None:
    """``log.exception`` appends the traceback, whose last line is the exception's message."""
    logger = logging.getLogger("regio.test.scrub")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    logger.addHandler(keep)
    try:
        try:
            raise ConnectionRefusedError("connect to ('198.51.100.9', 3478) and "
                                         "[2a00:1450:4001:81b::200e]:443 failed")
        except OSError:
            logger.exception("while talking to %s", "203.0.113.77")
    finally:
        logger.removeHandler(keep)
    text = _record_text(records[0])
    assert "Traceback" in text and "ConnectionRefusedError" in text
    assert "198.51.100.0/24" in text and "2a00:1450:4001::/48" in text
    assert "203.0.113.0/24" in text
    for raw in ("198.51.100.9", "2a00:1450:4001:81b::200e", "203.0.113.77"):
        assert raw not in text


def test_stack_info_is_scrubbed() -> None:
    record = logging.LogRecord("regio.t", logging.INFO, __file__, 1, "m", None, None,
                               sinfo="Stack (most recent call last):\n  peer=198.51.100.9")
    text = _record_text(record)
    assert "198.51.100.0/24" in text and "198.51.100.9" not in text


def test_long_runs_cost_linear_time() -> None:
    """A log line of 4,000 addresses (or of colons) is scrubbed whole; each candidate is
    tried only on the prefixes an address can fill (this took minutes before)."""
    text = "8.8.4.4:" * 4_000
    scrubbed = scrub_addresses(text)
    assert "8.8.4.4" not in scrubbed and scrubbed.count("8.8.4.0/24") == 4_000
    assert scrub_addresses(":" * 4_000) == ":" * 4_000
