"""Refusals at router level, on the real router: each one is dropped or closed *and* counted in
``/metrics`` (the core-level versions are in tests/transport). Also wss (TLS 1.2+) and the
metrics endpoint's privacy rule (no address labels)."""

from __future__ import annotations

import re
import socket
import ssl
import urllib.request
import warnings
from pathlib import Path

import pytest
import trio

from router.node import tls_context
from router.signaling.client import SignalingClient
from router.transport import DtlsCertificate, DtlsRole, TransportMux
from router.transport.dtls import DtlsCore
from router.transport.srtp import AEAD_AES_128_GCM
from tests.router.synth import CERT, SynthClient, rtp, token, transport_of
from tests.turn.netclient import self_signed
from turn.stun import MessageClass, Method, StunMessage, Username, short_term_key

_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


async def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``/metrics`` as ``{(name, labels): value}``."""

    def get() -> str:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    out = {}
    for line in (await trio.to_thread.run_sync(get)).splitlines():
        match = _SAMPLE.match(line)
        if match is None or line.startswith("#"):
            continue
        labels = re.findall(r'(\w+)="([^"]*)"', match["labels"] or "")
        out[(match["name"], frozenset(labels))] = float(match["value"])
    return out


def value(
    metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    want = {("region", "eu-west"), *labels.items()}
    return next((v for (n, ls), v in metrics.items() if n == name and ls == want), 0.0)


async def until_metric(url: str, name: str, expected: float, **labels: str) -> None:
    with trio.fail_after(10):
        while value(await scrape(url), name, **labels) < expected:
            await trio.sleep(0.05)


async def _publisher(nursery: trio.Nursery, node, name: str, fingerprint: str | None = None):  # type: ignore[no-untyped-def]
    client = await SynthClient.join(
        nursery, node.addresses.signaling_url, token("room", name, router="r1"), seed=len(name)
    )
    answer = await client.publish(audio_ssrc=4242, fingerprint=fingerprint)
    return client, answer


async def test_wrong_dtls_fingerprint_closes_and_counts(start_router, nursery) -> None:  # type: ignore[no-untyped-def]
    node = await start_router(metrics="127.0.0.1:0")
    other = str(DtlsCertificate.generate().fingerprint)
    assert other != str(CERT.fingerprint)
    alice, _ = await _publisher(nursery, node, "alice", fingerprint=other)
    await until_metric(node.addresses.metrics_url, "regio_router_dtls_failures_total", 1)
    metrics = await scrape(node.addresses.metrics_url)
    assert value(metrics, "regio_router_transports_closed_total", cause="dtls_failure") == 1
    # The router never keeps an SRTP session for it: the peer is gone (the participant stays,
    # told through signaling that its media transport closed).
    assert node.core.state_counts()["peers"] == 0
    await alice.close()


async def test_unvalidated_client_hello_ignored_and_counted(start_router, nursery) -> None:  # type: ignore[no-untyped-def]
    node = await start_router(metrics="127.0.0.1:0")
    alice, answer = await _publisher(nursery, node, "alice")
    assert alice.publisher is not None
    with trio.fail_after(10):
        await alice.publisher.connected.wait()
    # A genuine ClientHello, from an address that never passed ICE.
    hello = DtlsCore(CERT, role=DtlsRole.CLIENT, remote_fingerprint=CERT.fingerprint)
    hello.start(trio.current_time())
    [datagram] = hello.datagrams_to_send()
    assert 20 <= datagram[0] <= 63
    _, _, _, router_addr = transport_of(answer["sdp"])
    intruder = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await intruder.bind(("127.0.0.1", 0))
    await intruder.sendto(datagram, router_addr)
    await until_metric(
        node.addresses.metrics_url,
        "regio_router_udp_dropped_total",
        1,
        reason="dtls_unknown_address",
    )
    with trio.move_on_after(0.3) as waited:
        await intruder.recv(2048)
    assert waited.cancelled_caught, "the router answered an unvalidated ClientHello"
    assert alice.publisher.transport.srtp is not None  # the real session is untouched
    intruder.close()
    await alice.close()


async def test_bad_stun_integrity_unanswered_and_counted(start_router, nursery) -> None:  # type: ignore[no-untyped-def]
    node = await start_router(metrics="127.0.0.1:0")
    alice, answer = await _publisher(nursery, node, "alice")
    assert alice.publisher is not None
    router_ufrag, _pwd, _fp, router_addr = transport_of(answer["sdp"])
    username = Username(f"{router_ufrag}:{alice.publisher.transport.local_ufrag}")
    forged = StunMessage(Method.BINDING, MessageClass.REQUEST, bytes(12), (username,)).encode(
        integrity_key=short_term_key("not-the-router-password"), fingerprint=True
    )
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    await sock.sendto(forged, router_addr)
    await until_metric(
        node.addresses.metrics_url, "regio_router_stun_refused_total", 1, reason="bad_integrity"
    )
    with trio.move_on_after(0.3) as waited:
        await sock.recv(2048)
    assert waited.cancelled_caught, "the router answered STUN with bad MESSAGE-INTEGRITY"
    sock.close()
    await alice.close()


async def test_replayed_srtp_dropped_and_counted(start_router, nursery) -> None:  # type: ignore[no-untyped-def]
    node = await start_router(metrics="127.0.0.1:0")
    alice, answer = await _publisher(nursery, node, "alice")
    assert alice.publisher is not None
    with trio.fail_after(10):
        await alice.publisher.connected.wait()
    srtp = alice.publisher.transport.srtp
    assert srtp is not None
    # AEAD_AES_128_GCM is negotiated when offered (the router's DTLS server prefers it).
    assert srtp.profile is AEAD_AES_128_GCM and srtp.direct
    [router_peer] = node.core.negotiator.owners
    assert router_peer.srtp is not None and router_peer.srtp.profile is AEAD_AES_128_GCM
    protected = srtp.protect_rtp(rtp(1, 4242, 111, b"once", 0))
    assert protected is not None
    _, _, _, router_addr = transport_of(answer["sdp"])
    sock = alice.publisher.driver.sock  # the ICE-validated address
    before = node.core.stats.packets_in
    sock.sendto(protected, router_addr)
    sock.sendto(protected, router_addr)
    await until_metric(
        node.addresses.metrics_url, "regio_router_srtp_failures_total", 1, kind="replay"
    )
    assert node.core.stats.packets_in == before + 1
    await alice.close()


async def test_wss_requires_tls12(start_router, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = self_signed(tmp_path)
    node = await start_router(tls_cert=cert, tls_key=key)
    url = node.addresses.signaling_url
    assert url.startswith("wss://")
    good = ssl.create_default_context(cafile=cert)
    good.minimum_version = ssl.TLSVersion.TLSv1_2
    client = await SignalingClient.connect(url, ssl_context=good)
    await client.send({"type": "join", "token": token("room", "alice", router="r1")})
    assert (await client.recv_type("joined"))["type"] == "joined"
    await client.close()
    assert tls_context(cert, key).minimum_version is ssl.TLSVersion.TLSv1_2
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(cert)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        old.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:  # pragma: no cover - an OpenSSL without any TLS 1.1 suites
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    with pytest.raises((ssl.SSLError, trio.BrokenResourceError, OSError)):
        await SignalingClient.connect(url, ssl_context=old, timeout=5)


_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_IPV6 = re.compile(r"\b[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}\b")


async def test_metrics_have_no_address_labels(start_router, nursery) -> None:  # type: ignore[no-untyped-def]
    node = await start_router(metrics="127.0.0.1:0")
    alice, _ = await _publisher(nursery, node, "alice")
    assert alice.publisher is not None
    with trio.fail_after(10):
        await alice.publisher.connected.wait()
    metrics = await scrape(node.addresses.metrics_url)
    assert value(metrics, "regio_router_sessions") == 1
    assert value(metrics, "regio_router_peers") == 1
    names = {name for name, _ in metrics}
    assert {
        "regio_router_srtp_failures_total",
        "regio_router_stun_refused_total",
        "regio_router_udp_dropped_total",
        "process_cpu_seconds_total",  # dashboards divide it by forwarded packets
    } <= names
    for (name, labels), _ in metrics.items():
        for label, text in labels:
            assert not _IPV4.search(text) and not _IPV6.search(text), (name, label, text)
            assert label not in {"ip", "address", "addr", "peer", "client", "remote"}
    await alice.close()


def test_mux_counts_are_what_the_metrics_read() -> None:
    """The udp_dropped reasons the collector reads all exist on the mux's stats."""
    stats = TransportMux().stats
    for reason in (
        "stun_malformed",
        "stun_unknown_username",
        "dtls_unknown_address",
        "rtp_unknown_address",
        "rtcp_unknown_address",
        "unknown_kind",
    ):
        assert getattr(stats, reason) == 0
