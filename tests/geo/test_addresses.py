"""Address classification: the explicit special-purpose table and IPv4-embedding IPv6 forms."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo.addresses import (
    IPV4_SPECIAL,
    IPV6_SPECIAL,
    AddressKind,
    Embedding,
    classify,
    classify_text,
    parse_address,
)

K = AddressKind


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("8.8.8.8", K.PUBLIC),
        ("193.0.0.1", K.PUBLIC),
        ("10.1.2.3", K.PRIVATE),
        ("172.31.255.255", K.PRIVATE),
        ("172.32.0.1", K.PUBLIC),
        ("192.168.1.1", K.PRIVATE),
        ("100.64.0.1", K.SHARED),
        ("100.127.255.255", K.SHARED),
        ("100.128.0.1", K.PUBLIC),
        ("127.0.0.1", K.LOOPBACK),
        ("169.254.169.254", K.LINK_LOCAL),
        ("0.0.0.0", K.UNSPECIFIED),
        ("0.1.2.3", K.RESERVED),
        ("192.0.0.9", K.RESERVED),
        ("192.0.2.1", K.DOCUMENTATION),
        ("198.51.100.7", K.DOCUMENTATION),
        ("203.0.113.9", K.DOCUMENTATION),
        ("198.18.0.1", K.RESERVED),
        ("224.0.0.1", K.MULTICAST),
        ("239.255.255.250", K.MULTICAST),
        ("240.0.0.1", K.RESERVED),
        ("255.255.255.255", K.RESERVED),
        ("::", K.UNSPECIFIED),
        ("::1", K.LOOPBACK),
        ("fe80::1", K.LINK_LOCAL),
        ("fe80::1%eth0", K.LINK_LOCAL),
        ("fd00::1", K.PRIVATE),
        ("fc00::1", K.PRIVATE),
        ("fec0::1", K.RESERVED),
        ("ff02::1", K.MULTICAST),
        ("2001:db8::1", K.DOCUMENTATION),
        ("3fff::1", K.DOCUMENTATION),
        ("100::1", K.RESERVED),
        ("2001:2::1", K.RESERVED),
        ("4000::1", K.RESERVED),
        ("2a00:1450:4001::1", K.PUBLIC),
        ("2001:67c:2e8::1", K.PUBLIC),
    ],
)
def test_table(text: str, kind: AddressKind) -> None:
    address = parse_address(text)
    assert address is not None
    assert classify(address).kind is kind
    assert classify_text(text)[1] is kind


@pytest.mark.parametrize(
    ("text", "v4", "how"),
    [
        ("::ffff:8.8.8.8", "8.8.8.8", Embedding.IPV4_MAPPED),
        ("::ffff:10.0.0.1", "10.0.0.1", Embedding.IPV4_MAPPED),
        ("::8.8.8.8", "8.8.8.8", Embedding.IPV4_COMPATIBLE),
        ("2002:808:808::1", "8.8.8.8", Embedding.SIX_TO_FOUR),
        ("2002:c0a8:101::", "192.168.1.1", Embedding.SIX_TO_FOUR),
        ("64:ff9b::8.8.8.8", "8.8.8.8", Embedding.NAT64),
        ("64:ff9b::7f00:1", "127.0.0.1", Embedding.NAT64),
        ("64:ff9b:1::c100:1", "193.0.0.1", Embedding.NAT64_LOCAL),
        ("64:ff9b:1:abcd::a9fe:a9fe", "169.254.169.254", Embedding.NAT64_LOCAL),
        ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", "8.8.8.8", Embedding.TEREDO),
    ],
)
def test_embedded_forms(text: str, v4: str, how: Embedding) -> None:
    address = parse_address(text)
    assert address is not None
    result = classify(address)
    assert result.address == ipaddress.IPv4Address(v4)
    assert result.embedding is how
    assert result.kind is classify(ipaddress.IPv4Address(v4)).kind
    query, kind = classify_text(text)
    assert kind is result.kind
    assert query == (v4 if result.locatable else None)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1.2.3",
        "01.2.3.4",
        "1.2.3.4 ",
        "::g",
        "1::2::3",
        "x",
        "::ffff:1.2.3.04",
        "1.2.3.4\x00",
        "::\x00",
        "\ud800",
        "\u0661.\u0662.\u0663.\u0664",
        "fe80::1%",
    ],
)
def test_unparsable(text: str) -> None:
    assert parse_address(text) is None
    assert classify_text(text) == (None, None)


def test_tables_are_valid_networks() -> None:
    for cidr, _, note in IPV4_SPECIAL:
        assert ipaddress.IPv4Network(cidr) and note
    for cidr, _, note in IPV6_SPECIAL:
        assert ipaddress.IPv6Network(cidr) and note


v4_ints = st.integers(0, 2**32 - 1)


@given(v4_ints)
def test_every_embedding_classifies_as_its_ipv4(value: int) -> None:
    v4 = ipaddress.IPv4Address(value)
    expected = classify(v4).kind
    forms = [
        ipaddress.IPv6Address((0xFFFF << 32) | value),
        ipaddress.IPv6Address((0x2002 << 112) | (value << 80) | 1),
        ipaddress.IPv6Address((0x64FF9B << 96) | value),
        ipaddress.IPv6Address((0x64FF9B0001 << 80) | value),
        # Teredo, with a public server (a special server fails closed: see below)
        ipaddress.IPv6Address((0x20010000 << 96) | (0x4136E378 << 64) | (value ^ 0xFFFFFFFF)),
    ]
    if value > 1:
        forms.append(ipaddress.IPv6Address(value))
    for form in forms:
        result = classify(form)
        assert result.address == v4
        assert result.kind is expected
        assert classify_text(str(form))[1] is expected


def test_teredo_with_a_special_server_fails_closed() -> None:
    """TURN's relay filter denies a Teredo address whose server is special (a relay sends it
    bubbles); the front door must not be less strict."""
    address = ipaddress.IPv6Address("2001:0:a00:1:8000:63bf:f7f7:f7f7")  # server 10.0.0.1
    assert classify(address).kind is AddressKind.PRIVATE
    assert classify_text(str(address)) == (None, AddressKind.PRIVATE)


@given(v4_ints)
def test_ipv4_at_least_as_strict_as_ipaddress(value: int) -> None:
    address = ipaddress.IPv4Address(value)
    if not address.is_global:
        assert classify(address).kind is not AddressKind.PUBLIC


@given(st.integers(0, 2**128 - 1))
def test_ipv6_at_least_as_strict_as_ipaddress(value: int) -> None:
    address = ipaddress.IPv6Address(value)
    result = classify(address)
    if result.embedding is None and not address.is_global:
        assert result.kind is not AddressKind.PUBLIC
    # The hot path and the object path always agree.
    query, kind = classify_text(str(address))
    assert kind is result.kind
    assert (query is not None) == result.locatable


@given(st.text(max_size=60) | st.from_regex(r"[0-9a-f:.%\x00]{0,40}", fullmatch=True))
def test_arbitrary_text_never_raises(text: str) -> None:
    query, kind = classify_text(text)
    assert (kind is None) == (parse_address(text) is None)
    if kind is not AddressKind.PUBLIC:
        assert query is None


@given(
    st.one_of(st.ip_addresses(), v4_ints.map(lambda n: ipaddress.IPv6Address((0xFFFF << 32) | n)))
)
def test_never_less_strict_than_the_shared_table(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    """TURN's relay filter (control.ipclass) and the front door agree on what is special; the
    front door may only add strictness. The one deliberate difference: 64:ff9b:1::/48 (RFC 8215
    local-use NAT64) is read as the IPv4 address it carries, as for the well-known prefix."""
    from control.ipclass import classify as shared_classify

    if address in ipaddress.IPv6Network("64:ff9b:1::/48"):
        return
    if classify(address).locatable:
        assert shared_classify(address).is_global_unicast


def test_every_shared_table_range_is_unlocatable() -> None:
    from control.ipclass import SPECIAL_IPV4, SPECIAL_IPV6

    for network, name in (*SPECIAL_IPV4, *SPECIAL_IPV6):
        if name == "nat64-local":
            continue
        for address in (network.network_address, network.broadcast_address):
            assert not classify(address).locatable, (network, name)
