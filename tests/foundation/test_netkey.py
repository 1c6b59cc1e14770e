"""The shared client-network key (control/netkey.py) of the front door's limits and the TURN
nodes' quotas: /24 and /48 groups, IPv4-mapped as IPv4, families apart, text and address
forms alike, unknown and garbage shared."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from control.netkey import UNKNOWN_NETWORK, network_key


def _unmapped_v6(number: int) -> ipaddress.IPv6Address:
    """Any IPv6 address but the IPv4-mapped ones (those are tested as IPv4)."""
    if number >> 32 == 0xFFFF:
        number |= 1 << 127
    return ipaddress.IPv6Address(number)


v4s = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
v6s = st.integers(0, 2**128 - 1).map(_unmapped_v6)


@given(v4s, v4s)
def test_ipv4_keys_are_the_24(a: ipaddress.IPv4Address, b: ipaddress.IPv4Address) -> None:
    same_24 = int(a) >> 8 == int(b) >> 8
    assert (network_key(a) == network_key(b)) == same_24
    assert network_key(a) == int(a) >> 8, "the network number, never the address"


@given(v6s, v6s)
def test_ipv6_keys_are_the_48(a: ipaddress.IPv6Address, b: ipaddress.IPv6Address) -> None:
    assert (network_key(a) == network_key(b)) == (int(a) >> 80 == int(b) >> 80)


@given(v4s, v6s)
def test_families_never_collide_and_mapped_is_ipv4(v4: ipaddress.IPv4Address,
                                                   v6: ipaddress.IPv6Address) -> None:
    assert network_key(v4) != network_key(v6)
    mapped = ipaddress.IPv6Address("::ffff:" + str(v4))
    assert network_key(mapped) == network_key(v4)
    assert network_key(str(mapped)) == network_key(str(v4)) == network_key(v4)
    assert network_key(str(v6)) == network_key(v6)
    assert min(network_key(v4), network_key(v6)) >= 0 > UNKNOWN_NETWORK


@given(st.text(max_size=40))
def test_text_that_is_no_address_is_unknown(text: str) -> None:
    try:
        expected = network_key(ipaddress.ip_address(text))
    except ValueError:
        expected = UNKNOWN_NETWORK
    assert network_key(text) == expected


def test_unknown_examples() -> None:
    assert network_key(None) == network_key("") == network_key("not-an-ip") == UNKNOWN_NETWORK
    assert network_key("203.0.113.1") == network_key("203.0.113.254") != network_key(
        "203.0.114.1")
    assert network_key("2001:db8:1:2::1") == network_key("2001:db8:1:ffff::1")
