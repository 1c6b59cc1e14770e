"""Small pieces of the front door: rate limits, listen checks, body parsing, URLs, CLI wiring."""

from __future__ import annotations

import pytest

from control.cli import build_parser
from control.clierror import CliError
from control.cluster_up import FRONTDOOR, NodePlan, available_kinds, command_for
from control.schema import NodeAddress
from geo.frontdoor.cli import build_config
from geo.frontdoor.ratelimit import RateLimiter
from geo.frontdoor.service import BadRequest, JoinRequest, parse_join_body
from geo.frontdoor.snapshot import metrics_target, signaling_url, turn_urls
from geo.frontdoor.tls import ListenError, check_plain_listen, split_host_port


def test_token_bucket() -> None:
    limiter = RateLimiter(rate=2.0, burst=3.0)
    assert [limiter.acquire(1, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire(1, 0.0)
    assert wait == pytest.approx(0.5) and limiter.retry_after(wait) == 1
    assert limiter.acquire(2, 0.0) == 0.0  # another network has its own bucket
    assert limiter.acquire(1, 0.5) == 0.0  # refilled one token


def test_rate_limiter_memory_is_bounded() -> None:
    limiter = RateLimiter(rate=1.0, burst=2.0, max_buckets=100)
    for key in range(1000):
        limiter.acquire(key, float(key))
    assert len(limiter) <= 100


def test_listen_addresses() -> None:
    assert split_host_port("127.0.0.1:8443") == ("127.0.0.1", 8443)
    assert split_host_port("[::1]:80") == ("::1", 80)
    for bad in ("::1:80", "host", "h:99999", ":80"):
        with pytest.raises(ListenError):
            split_host_port(bad)
    for host in ("127.0.0.1", "127.1.2.3", "::1", "localhost"):
        check_plain_listen(host)
    for host in ("0.0.0.0", "10.0.0.1", "::", "example.org"):
        with pytest.raises(ListenError):
            check_plain_listen(host)


def test_body_parsing() -> None:
    assert parse_join_body(b"") == JoinRequest()
    assert parse_join_body(b'{"name":"A","policy":"eea","size":"small"}') == JoinRequest(
        "A", "eea", "small")
    for bad in (b"{", b"null", b'{"policy":1}', b'{"size":"huge"}', b'{"name":""}',
                b'{"name":"' + b"x" * 65 + b'"}', b'{"extra":1}', b"\xff"):
        with pytest.raises(BadRequest):
            parse_join_body(bad)


def test_join_bodies_are_remembered_only_when_valid_and_short() -> None:
    from geo.frontdoor import service as service_module
    from geo.frontdoor.service import JoinService

    remember = JoinService._parse_body
    holder = type("Holder", (), {"_bodies": {}})()
    body = b'{"policy":"eea"}'
    assert remember(holder, body) == JoinRequest(None, "eea", None)  # type: ignore[arg-type]
    assert holder._bodies == {body: JoinRequest(None, "eea", None)}
    with pytest.raises(BadRequest):
        remember(holder, b'{"policy":"x"}')  # type: ignore[arg-type]
    long_body = b'{"name":"' + b"x" * 60 + b'"}' + b" " * 300
    remember(holder, long_body)  # type: ignore[arg-type]
    assert list(holder._bodies) == [body]
    for i in range(service_module.BODY_CACHE_SIZE + 5):
        remember(holder, b'{"name":"n%d"}' % i)  # type: ignore[arg-type]
    assert len(holder._bodies) <= service_module.BODY_CACHE_SIZE


def test_urls_from_registered_addresses() -> None:
    addresses = (NodeAddress("udp", "192.0.2.1", 3478), NodeAddress("tls", "2001:db8::1", 5349),
                 NodeAddress("tcp", "192.0.2.1", 3478), NodeAddress("metrics", "::1", 9100))
    assert turn_urls(addresses) == ("turn:192.0.2.1:3478?transport=udp",
                                    "turn:192.0.2.1:3478?transport=tcp",
                                    "turns:[2001:db8::1]:5349?transport=tcp")
    assert metrics_target(addresses) == "[::1]:9100"
    assert signaling_url((NodeAddress("ws", "h", 1), NodeAddress("wss", "h", 2)), "/s") == \
        "wss://h:2/s"
    assert signaling_url(addresses, "/s") is None


def test_cluster_up_command_is_accepted() -> None:
    assert FRONTDOOR in available_kinds()
    command = command_for(NodePlan(FRONTDOOR, FRONTDOOR, None, 18443), "http://127.0.0.1:2379",
                          ("127.0.0.1/32",))
    args = build_parser().parse_args(command[3:])
    config = build_config(args)
    assert config.listen == "127.0.0.1:18443"
    assert config.trusted_proxy == ["127.0.0.1/32"]
    assert config.metrics_listen == "127.0.0.1:18444"  # its own listener (issue 15 item 8)


def test_cli_refuses_bad_combinations() -> None:
    parser = build_parser()
    for argv in (["frontdoor", "--listen", "0.0.0.0:1"],
                 ["frontdoor", "--tls-cert", "c.pem"],
                 ["frontdoor", "--trusted-proxy", "10.0.0.1/8"],
                 ["frontdoor", "--listen", "127.0.0.1:1", "--host", "127.0.0.1"],
                 ["frontdoor", "--default-policy", "strict"]):
        with pytest.raises(CliError):
            build_config(parser.parse_args(argv))
