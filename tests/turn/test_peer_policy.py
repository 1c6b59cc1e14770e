"""Every deny entry, on every path (CreatePermission, ChannelBind, Send), in the core."""

from __future__ import annotations

import pytest

from tests.turn.helpers import SERVER, Client, code, make_core
from turn.server.allocation import FiveTuple
from turn.server.peer_policy import PeerPolicy, parse_endpoint
from turn.stun import AdditionalAddressFamily

DENIED = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("0.0.0.0", "this-network"),
    ("0.1.2.3", "this-network"),
    ("10.1.2.3", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "cgnat"),
    ("169.254.169.254", "link-local"),
    ("169.254.1.1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::127.0.0.1", "loopback"),
    ("::0.0.0.2", "this-network"),
    ("2002:7f00:1::", "loopback"),
    ("2002:a9fe:a9fe::1", "link-local"),
    ("64:ff9b::a9fe:a9fe", "link-local"),
    ("64:ff9b::7f00:1", "loopback"),
    ("2001:0:1:2:3:4:80ff:fffe", "loopback"),  # Teredo, client 127.0.0.1 (inverted)
    ("2001:0:4136:e378:3:4:80ff:fffe", "loopback"),  # Teredo, client 127.0.0.1 (inverted)
    # Issue 15 item 4: forms that passed before, and the rest of ::/8 and reserved space.
    ("::ffff:0:7f00:1", "loopback"),  # IPv4-translated (RFC 2765)
    ("::ffff:0:a9fe:a9fe", "link-local"),
    ("::ffff:0:a00:1", "private"),
    ("64:ff9b:1::a00:1", "private"),  # local-use NAT64 (RFC 8215), /96 reading
    ("64:ff9b:1::7f00:1", "loopback"),
    ("64:ff9b:1:0:a:0:100::", "private"),  # local-use NAT64, /64 reading 10.0.0.1
    ("2001:0:7f00:1:8000:63bf:f7f7:f7f7", "loopback"),  # Teredo server 127.0.0.1
    ("::1:0:0:1", "reserved"),
    ("0:0:1::1", "reserved"),
    ("ff:ffff::1", "reserved"),
    ("4000::1", "reserved"),
    ("e000::1", "reserved"),
    ("2001:1::2", "ietf-protocol"),
]


def _client() -> Client:
    core, _ = make_core()
    c = Client(core, FiveTuple("udp", ("203.0.113.5", 40000), SERVER))
    assert code(c.allocate(AdditionalAddressFamily(0x02))) == 200
    return c


@pytest.mark.parametrize(("ip", "reason"), DENIED)
def test_create_permission_denied(ip: str, reason: str) -> None:
    c = _client()
    assert code(c.permission(ip)) == 403
    assert c.core.stats.peer_denied[reason] == 1
    assert not c.core.allocations[c.ft].permissions


@pytest.mark.parametrize(("ip", "reason"), DENIED)
def test_channel_bind_denied(ip: str, reason: str) -> None:
    c = _client()
    assert code(c.bind(0x4000, ip, 5000)) == 403
    assert c.core.stats.peer_denied[reason] == 1
    assert not c.core.allocations[c.ft].channels


@pytest.mark.parametrize(("ip", "reason"), DENIED)
def test_send_denied(ip: str, reason: str) -> None:
    c = _client()
    assert c.send(ip, 5000, b"payload") == []
    assert c.core.stats.peer_denied[reason] == 1


def test_public_peers_allowed() -> None:
    c = _client()
    for ip in ("8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"):
        assert code(c.permission(ip)) == 200


def test_allow_peer_opens_a_range_but_not_own_endpoints() -> None:
    core, _ = make_core(allow_peer=["10.0.0.0/8", "192.0.2.0/24"])
    c = Client(core, FiveTuple("udp", ("203.0.113.5", 40000), SERVER))
    c.allocate()
    assert code(c.permission("10.9.9.9")) == 200
    assert code(c.permission("172.16.0.1")) == 403
    # The node's own listener stays denied inside an allowed range, on every path with a port.
    assert code(c.bind(0x4000, SERVER[0], SERVER[1])) == 403
    assert code(c.permission(SERVER[0])) == 200
    assert c.send(SERVER[0], SERVER[1], b"x") == []
    assert core.stats.peer_denied["own-endpoint"] == 2


def test_relay_range_only_live_relays_are_peers() -> None:
    policy = PeerPolicy(allow=["198.51.100.0/24"], relay_ips=["198.51.100.7"],
                        relay_ports=(50000, 50009))
    policy.add_relay(("198.51.100.7", 50001))
    assert policy.check("198.51.100.7", 50001) is None  # a live allocation's relay
    assert policy.check("::ffff:198.51.100.7", 50001) is None
    assert policy.check("198.51.100.7", 50002) == "own-endpoint"  # free port: no probing
    assert policy.check("::ffff:198.51.100.7", 50002) == "own-endpoint"
    assert policy.check("198.51.100.7", 50010) is None  # outside the range: the usual rules
    assert policy.check("198.51.100.8", 50002) is None  # not a relay IP
    assert policy.check("198.51.100.7", None) is None  # CreatePermission: per IP
    policy.remove_relay(("198.51.100.7", 50001))
    assert policy.check("198.51.100.7", 50001) == "own-endpoint"


def test_live_relay_still_needs_an_allowed_ip() -> None:
    policy = PeerPolicy(relay_ips=["10.0.0.7"], relay_ports=(50000, 50009))
    policy.add_relay(("10.0.0.7", 50001))
    assert policy.check("10.0.0.7", 50001) == "private"


def test_wildcard_relay_ip_guards_the_range_on_special_addresses() -> None:
    policy = PeerPolicy(allow=["0.0.0.0/0"], relay_ips=["0.0.0.0"], relay_ports=(50000, 50009))
    assert policy.check("127.0.0.1", 50003) == "own-endpoint"
    assert policy.check("8.8.8.8", 50003) is None


def test_etcd_and_wildcard_endpoints() -> None:
    policy = PeerPolicy(allow=["0.0.0.0/0"], own_endpoints=[("10.0.0.5", 2379), ("0.0.0.0", 3478)],
                        relay_ips=["203.0.113.9"])
    assert policy.check("10.0.0.5", 2379) == "own-endpoint"
    assert policy.check("203.0.113.9", 3478) == "own-endpoint"
    assert policy.check("127.0.0.1", 3478) == "own-endpoint"
    assert policy.check("8.8.8.8", 3478) is None
    assert policy.check("8.8.8.8", 0) == "invalid"


def test_parse_endpoint() -> None:
    assert parse_endpoint("127.0.0.1:3478") == ("127.0.0.1", 3478)
    assert parse_endpoint("[::1]:5") == ("::1", 5)
    assert parse_endpoint("::1", 7) == ("::1", 7)
    with pytest.raises(ValueError):
        parse_endpoint("host:99999")
