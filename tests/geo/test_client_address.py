"""The client address behind trusted proxies: rightmost untrusted hop, never a spoofed one."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo.addresses import IPAddress
from geo.client_address import client_address, parse_trusted_proxies
from geo.forwarded import MalformedHeader, parse_forwarded, parse_x_forwarded_for

TRUSTED = parse_trusted_proxies(["10.0.0.0/8", "fd00::/8"])
ip = ipaddress.ip_address


def xff(value: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-for", value.encode())]


def fwd(value: str) -> list[tuple[str, str]]:
    return [("Forwarded", value)]


def test_untrusted_peer_headers_ignored() -> None:
    assert client_address("203.0.113.5", xff("8.8.8.8"), TRUSTED) == ip("203.0.113.5")
    assert client_address("203.0.113.5", xff("8.8.8.8"), ()) == ip("203.0.113.5")


def test_trusted_peer_rightmost_untrusted() -> None:
    headers = xff("1.1.1.1, 193.0.0.1, 10.0.0.2")
    assert client_address("10.0.0.1", headers, TRUSTED) == ip("193.0.0.1")


def test_mapped_peer_is_matched_as_ipv4() -> None:
    assert client_address("::ffff:10.0.0.1", xff("193.0.0.1"), TRUSTED) == ip("193.0.0.1")
    assert client_address("::ffff:8.8.8.8", [], TRUSTED) == ip("8.8.8.8")


def test_multiple_header_lines_join_in_order() -> None:
    headers = [("X-Forwarded-For", "1.1.1.1"), ("x-forwarded-for", "193.0.0.1, 10.9.9.9")]
    assert client_address("10.0.0.1", headers, TRUSTED) == ip("193.0.0.1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[2001:67c:2e8::1]:443", "2001:67c:2e8::1"),
        ("2001:67c:2e8::1", "2001:67c:2e8::1"),
        ("193.0.0.1:5060", "193.0.0.1"),
        (" 193.0.0.1 , 10.1.1.1 ", "193.0.0.1"),
    ],
)
def test_xff_forms(value: str, expected: str) -> None:
    assert client_address("10.0.0.1", xff(value), TRUSTED) == ip(expected)


@pytest.mark.parametrize(
    "value",
    [
        "193.0.0.1, garbage",
        "193.0.0.1:99999",
        "[193.0.0.1]",
        "[2001:db8::1",
        "1.2.3.4:x",
        "fe80::1%eth0",
        "",
        " ",
        "193.0.0.1,",
        "193.0.0.1, , 10.1.1.1",
        ",193.0.0.1",
        "1.2.3.256",
        "193.0.0.1, 10.0.0.300",
        "[2001:67c:2e8::1]:65536",
        "2001:67c:2e8::1::1",
    ],
)
def test_malformed_xff_fails_closed(value: str) -> None:
    """Issue 15 item 2: empty, garbled or out-of-range elements give no address at all (the
    caller fails closed), never the proxy's own address."""
    assert client_address("10.0.0.1", xff(value), TRUSTED) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("for=193.0.0.1", "193.0.0.1"),
        ('for="[2001:67c:2e8::1]:4711"', "2001:67c:2e8::1"),
        ('For="[2001:67c:2e8::1]"', "2001:67c:2e8::1"),
        ('for="193.0.0.1:80";proto=https;by=10.0.0.1', "193.0.0.1"),
        ("for=8.8.8.8, for=193.0.0.1;proto=http, for=10.0.0.3", "193.0.0.1"),
        ('for=193.0.0.1; proto="ht\\"tp"', "193.0.0.1"),
    ],
)
def test_forwarded_forms(value: str, expected: str) -> None:
    got = client_address("10.0.0.1", fwd(value), TRUSTED, header="forwarded")
    assert got == ip(expected)


@pytest.mark.parametrize(
    "value",
    [
        "for=2001:db8::1",  # IPv6 must be quoted and bracketed
        'for="[2001:db8::1]',
        "for=193.0.0.1;for=8.8.8.8",
        "for",
        "for=",
        "for=193.0.0.1 proto=http",
        'for="300.1.1.1"',
        "",
        "for=193.0.0.1, , for=10.0.0.2",
        "for=193.0.0.1,",
        'for="[2001:db8::1]:70000"',
    ],
)
def test_malformed_forwarded_fails_closed(value: str) -> None:
    got = client_address("10.0.0.1", fwd(value), TRUSTED, header="forwarded")
    assert got is None


def test_trusted_proxy_without_a_header_names_no_client() -> None:
    assert client_address("10.0.0.1", [], TRUSTED) is None
    assert client_address("10.0.0.1", xff("193.0.0.1"), TRUSTED, header="forwarded") is None


def test_unknown_or_obfuscated_client_hop_is_unlocatable() -> None:
    assert client_address("10.0.0.1", fwd("for=unknown"), TRUSTED, header="forwarded") is None
    assert client_address("10.0.0.1", fwd('for="_hidden:_p"'), TRUSTED, header="forwarded") is None
    assert client_address("10.0.0.1", fwd("proto=https"), TRUSTED, header="forwarded") is None
    assert client_address("10.0.0.1", xff("unknown"), TRUSTED) is None
    # An unknown hop to the *left* of the client does not matter.
    assert client_address("10.0.0.1", xff("unknown, 193.0.0.1"), TRUSTED) == ip("193.0.0.1")


def test_only_the_configured_header_is_read() -> None:
    headers = [("Forwarded", "for=8.8.8.8"), ("X-Forwarded-For", "193.0.0.1")]
    assert client_address("10.0.0.1", headers, TRUSTED) == ip("193.0.0.1")
    got = client_address("10.0.0.1", headers, TRUSTED, header="forwarded")
    assert got == ip("8.8.8.8")


def test_all_hops_trusted_names_no_client() -> None:
    assert client_address("10.0.0.1", xff("10.0.0.7, 10.0.0.8"), TRUSTED) is None


def test_bad_peer() -> None:
    assert client_address("unix:/run/x.sock", xff("8.8.8.8"), TRUSTED) is None
    assert client_address(None, [], TRUSTED) is None


def test_trusted_proxy_parsing() -> None:
    with pytest.raises(ValueError, match="invalid trusted proxy"):
        parse_trusted_proxies(["10.0.0.1/8"])
    with pytest.raises(ValueError):
        parse_trusted_proxies(["nonsense"])


def test_parsers_directly() -> None:
    for value in ("", " , ;, ", 'for="unterminated'):
        with pytest.raises(MalformedHeader):
            parse_forwarded(value)
    for value in ("", "1.1.1.1,,2.2.2.2", " "):
        with pytest.raises(MalformedHeader):
            parse_x_forwarded_for(value)


# --- properties -----------------------------------------------------------------------------

public_v4 = (
    st.integers(0x01000000, 0xDFFFFFFF)
    .map(ipaddress.IPv4Address)
    .filter(lambda a: a.is_global and not a.is_private)
)
public_v6 = st.integers(0x2400 << 112, (0x2C00 << 112) - 1).map(ipaddress.IPv6Address)
clients = st.one_of(public_v4, public_v6)
trusted_hops = st.one_of(
    st.integers(0x0A000000, 0x0AFFFFFF).map(ipaddress.IPv4Address),
    st.integers(0xFD << 120, (0xFE << 120) - 1).map(ipaddress.IPv6Address),
)
anything = st.one_of(clients, trusted_hops, st.ip_addresses())


def xff_item(address: IPAddress, port: int | None) -> str:
    if address.version == 6:
        return f"[{address}]:{port}" if port is not None else str(address)
    return f"{address}:{port}" if port is not None else str(address)


def fwd_item(address: IPAddress, port: int | None) -> str:
    if address.version == 6:
        node = f"[{address}]" + (f":{port}" if port is not None else "")
        return f'for="{node}"'
    return f'for="{address}:{port}"' if port is not None else f"for={address}"


ports = st.none() | st.integers(1, 65535)


@given(
    client=clients,
    spoofed=st.lists(st.tuples(anything, ports), max_size=4),
    proxies=st.lists(st.tuples(trusted_hops, ports), max_size=4),
    port=ports,
    peer=trusted_hops,
    use_forwarded=st.booleans(),
)
def test_client_found_whatever_it_prepends(
    client: IPAddress,
    spoofed: list[tuple[IPAddress, int | None]],
    proxies: list[tuple[IPAddress, int | None]],
    port: int | None,
    peer: IPAddress,
    use_forwarded: bool,
) -> None:
    """Whatever the client writes left of its own hop, the result is the client."""
    chain = [*spoofed, (client, port), *proxies]
    if use_forwarded:
        value = ", ".join(fwd_item(a, p) for a, p in chain)
        got = client_address(peer, fwd(value), TRUSTED, header="forwarded")
    else:
        value = ", ".join(xff_item(a, p) for a, p in chain)
        got = client_address(peer, xff(value), TRUSTED)
    assert got == client


@given(
    peer=clients,
    value=st.text(max_size=80),
    header=st.sampled_from(["x-forwarded-for", "forwarded"]),
)
def test_untrusted_peer_always_wins(peer: IPAddress, value: str, header: str) -> None:
    assert client_address(str(peer), [(header, value)], TRUSTED, header=header) == peer  # type: ignore[arg-type]


@given(
    peer=trusted_hops,
    value=st.text(alphabet=st.sampled_from('0123456789abcdef:.[]",;= _-forunkwn'), max_size=60)
    | st.text(max_size=60),
    header=st.sampled_from(["x-forwarded-for", "forwarded"]),
)
def test_arbitrary_headers_never_raise(peer: IPAddress, value: str, header: str) -> None:
    got = client_address(peer, [(header, value)], TRUSTED, header=header)  # type: ignore[arg-type]
    # The result is nothing (unlocatable) or an address the header really carries: never the
    # trusted proxy's own address unless the header names it.
    if got is not None:
        assert str(got) in value or got.exploded in value or _in_header(got, value)
        assert not any(got in network for network in TRUSTED)


bad_elements = st.sampled_from([
    "", " ", "garbage", "1.2.3.256", "300.1.1.1", "1.2.3.4:65536", "1.2.3.4:-1", "[::1]:99999",
    "1.2.3", "1.2.3.4.5", "::g", "[2001:db8::1", "1.2.3.4:", "0x01020304", "01.2.3.4",
])


@given(
    client=clients,
    proxies=st.lists(st.tuples(trusted_hops, ports), max_size=3),
    bad=bad_elements,
    position=st.integers(0, 5),
    peer=trusted_hops,
)
def test_one_bad_xff_element_anywhere_fails_closed(
    client: IPAddress,
    proxies: list[tuple[IPAddress, int | None]],
    bad: str,
    position: int,
    peer: IPAddress,
) -> None:
    """An empty, garbled or out-of-range element anywhere in the chain: no address (the join
    fails closed), whatever else the chain holds."""
    items = [xff_item(a, p) for a, p in [(client, None), *proxies]]
    items.insert(min(position, len(items)), bad)
    assert client_address(peer, xff(", ".join(items)), TRUSTED) is None


def _in_header(address: IPAddress, value: str) -> bool:
    import re

    for candidate in re.split(r'[\s,;="\[\]]+', value):
        host = candidate.rsplit(":", 1)[0] if candidate.count(":") == 1 else candidate
        try:
            if ipaddress.ip_address(host) == address:
                return True
        except ValueError:
            continue
    return False
