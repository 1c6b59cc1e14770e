from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.ipclass import SPECIAL_IPV4, classify, embedded_ipv4


@pytest.mark.parametrize(
    ("address", "special"),
    [
        ("127.0.0.1", "loopback"),
        ("0.0.0.0", "this-network"),
        ("10.1.2.3", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "cgnat"),
        ("100.127.255.255", "cgnat"),
        ("169.254.169.254", "link-local"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        # IPv6 forms that embed a special IPv4 address (CVE-2020-26262 and its 2026 cousins)
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::127.0.0.1", "loopback"),
        ("::10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),
        ("2002:a9fe:a9fe::1", "link-local"),
        ("64:ff9b::7f00:1", "loopback"),
        ("64:ff9b::a00:1", "private"),
        ("64:ff9b:1::1", "nat64-local"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo client 127.0.0.1
    ],
)
def test_special_addresses(address: str, special: str) -> None:
    assert classify(address).special == special


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "193.0.0.1", "2a00:1450:4001::1", "::ffff:8.8.8.8", "2002:808:808::1"]
)
def test_global_unicast(address: str) -> None:
    assert classify(address).is_global_unicast


def test_embedded_forms_name_their_embedding() -> None:
    assert classify("::ffff:1.2.3.4").embedding == "ipv4-mapped"
    assert classify("::1.2.3.4").embedding == "ipv4-compatible"
    assert classify("64:ff9b::102:304").embedding == "nat64"
    assert classify("2002:102:304::").embedding == "6to4"
    assert str(classify("2002:102:304::").effective) == "1.2.3.4"


def test_unparsable_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        classify("999.1.1.1")


@given(st.ip_addresses(v=4))
def test_every_embedding_classifies_as_its_ipv4(ip: ipaddress.IPv4Address) -> None:
    value = int(ip)
    forms = [
        ipaddress.IPv6Address((0xFFFF << 32) | value),
        ipaddress.IPv6Address((0x64FF9B << 96) | value),
        ipaddress.IPv6Address((0x2002 << 112) | (value << 80)),
        ipaddress.IPv6Address((0x20010000 << 96) | (~value & 0xFFFFFFFF)),
    ]
    if value > 1:
        forms.append(ipaddress.IPv6Address(value))
    expected = classify(ip).special
    for form in forms:
        result = classify(form)
        assert result.effective == ip
        assert result.special == expected


@given(st.ip_addresses(v=4))
def test_ipv4_table_agrees_with_explicit_ranges(ip: ipaddress.IPv4Address) -> None:
    inside = [name for network, name in SPECIAL_IPV4 if ip in network]
    assert classify(ip).special == (inside[0] if inside else None)


@given(st.ip_addresses(v=6))
def test_embedding_is_consistent(ip: ipaddress.IPv6Address) -> None:
    embedded = embedded_ipv4(ip)
    result = classify(ip)
    if embedded is None:
        assert result.effective == ip
    else:
        assert result.effective == embedded[0]
