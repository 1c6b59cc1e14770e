from __future__ import annotations

import ipaddress
import logging

from hypothesis import given
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
