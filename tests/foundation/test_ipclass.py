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
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo client 127.0.0.1
        # Issue 15 item 4: the forms that were missing, and the rest of ::/8 and reserved space
        ("::ffff:0:7f00:1", "loopback"),  # IPv4-translated (RFC 2765)
        ("::ffff:0:a9fe:a9fe", "link-local"),
        ("::ffff:0:808:808", None),
        ("64:ff9b:1::a00:1", "private"),  # local-use NAT64, /96 reading
        ("64:ff9b:1:0:a:0:100::", "private"),  # local-use NAT64, /64 reading: 10.0.0.1
        ("64:ff9b:1::1", "this-network"),
        ("2001:0:7f00:1:8000:63bf:f7f7:f7f7", "loopback"),  # Teredo server 127.0.0.1
        ("::1:0:0:1", "reserved"),
        ("0:1::1", "reserved"),
        ("ff:ffff::1", "reserved"),
        ("100::1", "discard"),
        ("101::1", "reserved"),
        ("400::1", "reserved"),
        ("1234::1", "reserved"),
        ("4000::1", "reserved"),
        ("6000::1", "reserved"),
        ("a000::1", "reserved"),
        ("e000::1", "reserved"),
        ("fe00::1", "reserved"),
        ("2001:1::2", "ietf-protocol"),  # TURN anycast
        ("2001:3::1", "ietf-protocol"),  # AMT
        ("2620:4f:8000::1", "as112"),
    ],
)
def test_special_addresses(address: str, special: str | None) -> None:
    assert classify(address).special == special


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "193.0.0.1", "2a00:1450:4001::1", "::ffff:8.8.8.8", "2002:808:808::1"]
)
def test_global_unicast(address: str) -> None:
    assert classify(address).is_global_unicast


def test_embedded_forms_name_their_embedding() -> None:
    assert classify("::ffff:0:102:304").embedding == "ipv4-translated"
    assert classify("64:ff9b:1::102:304").embedding == "nat64-local"
    assert str(classify("64:ff9b:1::102:304").effective) == "1.2.3.4"
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
        ipaddress.IPv6Address((0x20010000 << 96) | (0x4136E378 << 64) | (~value & 0xFFFFFFFF)),
        ipaddress.IPv6Address((0xFFFF << 32 << 16) | value),  # IPv4-translated
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


@given(st.ip_addresses(v=4).filter(lambda a: classify(a).special is not None), st.data())
def test_every_embedding_of_a_denied_ipv4_is_denied(ip: ipaddress.IPv4Address,
                                                     data: st.DataObject) -> None:
    """Issue 15 item 4: whichever IPv6 form carries a denied IPv4 address, and whatever the
    other bits of the form hold, the IPv6 address is denied."""
    value = int(ip)
    noise = data.draw(st.integers(0, (1 << 64) - 1))
    forms = [
        (0xFFFF << 32) | value,  # mapped
        (0xFFFF << 48) | value,  # translated
        (0x64FF9B << 96) | value,  # NAT64 well-known
        (0x64FF9B0001 << 80) | (noise & ((1 << 48) - 1)) << 32 | value,  # local-use, /96
        (0x64FF9B0001 << 80) | (noise & 0xFF) << 64 | value << 24,  # local-use, /64
        (0x2002 << 112) | (value << 80) | (noise & ((1 << 80) - 1)),  # 6to4
        # Teredo client (inverted), any server, flags and port
        (0x20010000 << 96) | (noise << 32 & ((1 << 96) - 1)) | (~value & 0xFFFFFFFF),
        (0x20010000 << 96) | (value << 64) | (noise & ((1 << 64) - 1)),  # Teredo server
    ]
    if value > 1:
        forms.append(value)  # compatible
    for form in forms:
        address = ipaddress.IPv6Address(form)
        assert classify(address).special is not None, address


@given(st.integers(0, (1 << 120) - 1))
def test_all_of_colon_colon_slash_8_is_special(value: int) -> None:
    """Every address of ::/8 is denied: an embedding of a denied IPv4 address, or reserved."""
    address = ipaddress.IPv6Address(value)
    result = classify(address)
    if result.embedding is None:
        assert result.special is not None, address


@given(st.ip_addresses(v=6))
def test_outside_global_unicast_only_embeddings_pass(ip: ipaddress.IPv6Address) -> None:
    result = classify(ip)
    if ip not in ipaddress.IPv6Network("2000::/3") and result.embedding is None:
        assert result.special is not None, ip
