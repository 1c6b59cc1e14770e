"""The compiled fast path (router.transport._fastpath) against the Python reference loops.

Same inputs through both: SRTP output byte for byte for the same keys and packets (hypothesis),
the same datagrams on a real loopback socket in the same order for sendmmsg vs sendto and
recvmmsg vs recvfrom, and the drivers' end-to-end SRTP exchange on either path.
"""

from __future__ import annotations

import os
import socket
import struct
import time

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router.transport import fastpath
from router.transport.srtp import (
    AEAD_AES_128_GCM,
    AES128_CM_SHA1_80,
    PROFILES,
    SrtpContext,
    SrtpProfile,
    exporter_length,
    split_keying_material,
)
from router.transport.udp_driver import MAX_BATCH, UdpDriver, enlarge_socket_buffers
from tests.transport import test_udp_driver


@pytest.fixture(autouse=True)
def _built() -> None:
    """`make setup` builds the helper (build-essential and python3-dev are in
    infra/scripts/system-packages.sh): a missing build is a failure, not a skip."""
    if not fastpath.built():
        pytest.fail(f"make setup should have built the fast path: {fastpath.describe()}")


DEST = ("192.0.2.1", 5000)


def contexts(profile: SrtpProfile, material: bytes) -> tuple[SrtpContext, SrtpContext]:
    local, remote = split_keying_material(material, profile, is_client=True)
    return (SrtpContext(profile, local, remote, fast=True),
            SrtpContext(profile, local, remote, fast=False))


rtp_packets = st.lists(
    st.one_of(
        st.builds(
            lambda b1, seq, ts, ssrc, payload: struct.pack("!BBHII", 0x80, b1, seq, ts, ssrc)
            + payload,
            st.integers(0, 255), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF),
            st.sampled_from([1, 2, 0xDEADBEEF]), st.binary(max_size=1400),
        ),
        st.binary(max_size=20),  # too short for RTP (or just long enough)
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile=st.sampled_from(PROFILES), material=st.binary(min_size=60, max_size=60),
       batches=st.lists(rtp_packets, min_size=1, max_size=4))
def test_protect_batch_is_byte_identical_to_the_reference(
    profile: SrtpProfile, material: bytes, batches: list[list[bytes]]
) -> None:
    fast, reference = contexts(profile, material[: exporter_length(profile)])
    assert fast.fast and not reference.fast
    for packets in batches:
        out_fast: list[tuple[bytes, object]] = [(b"earlier", ("192.0.2.9", 1))]
        out_ref: list[tuple[bytes, object]] = [(b"earlier", ("192.0.2.9", 1))]
        sent = fast.protect_rtp_batch(packets, DEST, out_fast)
        assert sent == reference.protect_rtp_batch(packets, DEST, out_ref)
        assert out_fast == out_ref
        assert fast.stats == reference.stats


@pytest.mark.parametrize("profile", [AEAD_AES_128_GCM, AES128_CM_SHA1_80], ids=lambda p: p.name)
def test_fast_protect_decrypts_on_the_other_side(profile: SrtpProfile) -> None:
    material = os.urandom(exporter_length(profile))
    client = SrtpContext(profile, *split_keying_material(material, profile, is_client=True),
                         fast=True)
    server = SrtpContext(profile, *split_keying_material(material, profile, is_client=False))
    packets = [struct.pack("!BBHII", 0x80, 96, seq, seq * 3000, 7) + bytes(1100)
               for seq in range(50)]
    out: list[tuple[bytes, object]] = []
    assert client.protect_rtp_batch(packets, DEST, out) == 50
    assert [server.unprotect_rtp(data) for data, _ in out] == packets
    # Serving a NACK protects the same packet again (allow_repeat_tx), on both paths alike.
    again: list[tuple[bytes, object]] = []
    assert client.protect_rtp_batch(packets[:1], DEST, again) == 1
    assert again[0][0] == out[0][0]


def test_fast_path_needs_the_direct_path() -> None:
    material = os.urandom(exporter_length(AEAD_AES_128_GCM))
    keys = split_keying_material(material, AEAD_AES_128_GCM, is_client=True)
    with pytest.raises(ValueError, match="direct"):
        SrtpContext(AEAD_AES_128_GCM, *keys, direct=False, fast=True)
    assert not SrtpContext(AEAD_AES_128_GCM, *keys, direct=False).fast


def test_switched_off_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fastpath.ENV, "off")
    assert not fastpath.enabled()
    assert "reference" in fastpath.describe()
    material = os.urandom(exporter_length(AEAD_AES_128_GCM))
    keys = split_keying_material(material, AEAD_AES_128_GCM, is_client=True)
    assert not SrtpContext(AEAD_AES_128_GCM, *keys).fast


@st.composite
def one_byte_blocks(draw: st.DrawFn) -> tuple[bytes, int, int, bytes]:
    """A packet whose one-byte extension block is well formed or not (random bytes, elements
    with random ids and lengths, padding, a truncated last element), and an id table."""
    elements = b""
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 4))
        if kind == 0:
            elements += b"\x00"  # padding
        else:
            ext_id = draw(st.integers(1, 15))
            size = draw(st.integers(1, 16))
            elements += bytes([(ext_id << 4) | (size - 1)]) + draw(st.binary(min_size=size,
                                                                           max_size=size))
    if draw(st.booleans()):
        elements = draw(st.binary(max_size=24))
    end_cut = draw(st.integers(0, 3))
    head = bytes(12) + b"\xbe\xde" + b"\x00\x00"
    packet = head + elements + draw(st.binary(max_size=30))
    end = min(len(packet), 16 + len(elements) - end_cut) if elements else 16
    table = bytes(draw(st.lists(st.integers(0, 255), min_size=256, max_size=256)))
    return packet, 16, max(16, end), table


@settings(max_examples=400, deadline=None)
@given(case=one_byte_blocks(), as_bytearray=st.booleans())
def test_one_byte_rewrite_equals_the_reference(
    case: tuple[bytes, int, int, bytes], as_bytearray: bool
) -> None:
    from router.forwarding import packet as packet_module
    from router.rtp import RtpDecodeError

    data, pos, end, table = case
    buffer: bytes | bytearray = bytearray(data) if as_bytearray else data
    try:
        expected: object = packet_module._rewrite_one_byte(buffer, pos, end, table)
    except RtpDecodeError as exc:
        expected = str(exc)
    got = fastpath.compiled().rewrite_one_byte(buffer, pos, end, table)
    if isinstance(got, int):
        assert str(packet_module._overrun(buffer, got, end)) == expected
    else:
        assert got == expected
    assert bytes(buffer) == data  # the input is never modified


def test_rewrite_extensions_uses_the_compiled_rewrite_when_enabled() -> None:
    from router.forwarding import packet as packet_module

    expected = fastpath.compiled().rewrite_one_byte if fastpath.enabled() else None
    assert packet_module._fast_one_byte is expected


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return sock


def receive_all(sock: socket.socket, count: int) -> list[bytes]:
    return [sock.recvfrom(65536)[0] for _ in range(count)]


class _Null:
    """A core that receives nothing and has nothing to send (the driver's send side only)."""

    def __init__(self) -> None:
        self.outbox: list[tuple[bytes, object]] = []
        self.received: list[tuple[bytes, object]] = []

    def receive_datagram(self, data: bytes, addr: object, now: float) -> None:
        self.received.append((data, addr))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, object]]:
        return []

    def get_timer(self) -> float | None:
        return None

    def handle_timer(self, now: float) -> None:
        pass


@pytest.mark.parametrize("fast", [True, False], ids=["sendmmsg", "sendto"])
def test_flush_sends_the_same_datagrams_in_order(fast: bool) -> None:
    sender, first, second = udp_socket(), udp_socket(), udp_socket()
    a, b = first.getsockname(), second.getsockname()
    core = _Null()
    driver = UdpDriver(sender, core, lambda: None, fast=fast)  # type: ignore[arg-type]
    datagrams = [bytes([i]) * (i * 7 % 1300 + 1) for i in range(150)]
    for i, data in enumerate(datagrams):
        core.outbox.append((data, a if i % 3 else b))
    core.outbox.insert(40, (bytes(70000), a))  # too large for UDP: counted, dropped
    core.outbox.insert(90, (b"by-name", ("localhost", b[1])))  # only sendto resolves names
    driver._flush()
    assert core.outbox == []
    assert (driver.datagrams_out, driver.send_errors) == (152, 1)
    assert receive_all(first, 100) == [d for i, d in enumerate(datagrams) if i % 3]
    expected_b = [d for i, d in enumerate(datagrams) if not i % 3]
    expected_b.insert(30, b"by-name")
    assert receive_all(second, 51) == expected_b
    for sock in (sender, first, second):
        sock.close()


@pytest.mark.parametrize("fast", [True, False], ids=["recvmmsg", "recvfrom"])
async def test_batch_reads_the_same_datagrams_and_addresses(fast: bool) -> None:
    server, one, two = udp_socket(), udp_socket(), udp_socket()
    enlarge_socket_buffers(server)  # 300 datagrams queued before the first read
    core = _Null()
    driver = UdpDriver(server, core, lambda: None, fast=fast)  # type: ignore[arg-type]
    sent = []
    for i in range(300):  # more than one batch (MAX_BATCH) and one recvmmsg chunk
        data = bytes([i & 0xFF]) * (i * 13 % 1500 + 1)
        source = one if i % 2 else two
        source.sendto(data, server.getsockname())
        sent.append((data, source.getsockname()))
    batches = -(-300 // MAX_BATCH)
    for n in range(1, batches + 1):
        driver._batch()
        assert driver.datagrams_in == min(300, n * MAX_BATCH)  # never more than a batch
    assert core.received == sent
    for sock in (server, one, two):
        sock.close()


@pytest.mark.parametrize("fast", [True, False], ids=["recvmmsg", "recvfrom"])
async def test_on_read_marks_each_batch_with_input_once(fast: bool) -> None:
    """The router's forwarding-latency histogram starts at ``on_read``: once per batch that
    read something, before the core sees it, and never for a batch that read nothing."""
    server, client = udp_socket(), udp_socket()
    core = _Null()
    marks: list[int] = []
    driver = UdpDriver(server, core, lambda: None, fast=fast,  # type: ignore[arg-type]
                       on_read=lambda: marks.append(len(core.received)))
    driver._batch()
    assert marks == []
    for i in range(MAX_BATCH + 5):
        client.sendto(bytes([i & 0xFF]) * 20, server.getsockname())
    driver._batch()
    driver._batch()
    assert marks == [0, MAX_BATCH]  # one mark per batch, each before its first datagram
    assert len(core.received) == MAX_BATCH + 5
    server.close()
    client.close()


def test_latency_histogram_counts_a_bound_in_its_own_bucket() -> None:
    from router.signaling.hub import LatencyRecorder

    recorder = LatencyRecorder()
    for seconds in (0.0, 0.0001, 0.00011, 0.1, 5.0):
        recorder.observe(seconds, 2)
    assert recorder.counts[0] == 4  # <= 0.1 ms, the bound included (Prometheus' "le")
    assert recorder.counts[1] == 2
    assert recorder.counts[len(LatencyRecorder.BUCKETS) - 1] == 2  # 0.1 s
    assert recorder.counts[-1] == 2  # above every bound
    assert recorder.observations == 10


async def test_recvmmsg_drops_and_counts_oversized_datagrams() -> None:
    server, client = udp_socket(), udp_socket()
    core = _Null()
    driver = UdpDriver(server, core, lambda: None, fast=True)  # type: ignore[arg-type]
    for data in (b"small", bytes(20000), b"after"):
        client.sendto(data, server.getsockname())
    driver._batch()
    assert [d for d, _ in core.received] == [b"small", b"after"]
    assert driver.truncated == 1
    server.close()
    client.close()


def test_recvmmsg_stamps_each_datagram_with_the_kernel_receive_time() -> None:
    """The bench's measure of when a server's copy reached a subscriber: with SO_TIMESTAMPNS,
    each datagram's stamp lies between its send and the read; without it, 0."""
    helper = fastpath.compiled()
    stamped, plain, client = udp_socket(), udp_socket(), udp_socket()
    stamped.setsockopt(socket.SOL_SOCKET, helper.SO_TIMESTAMPNS, 1)
    time.sleep(0.05)  # Linux turns stamping on for the first such socket asynchronously
    before = time.time_ns()
    for i in range(100):  # more than one recvmmsg chunk
        client.sendto(bytes([i]), stamped.getsockname())
        client.sendto(bytes([i]), plain.getsockname())
    after = time.time_ns()
    out: list[tuple[bytes, tuple[str, int]]] = []
    stamps: list[int] = []
    assert helper.recv_batch(stamped.fileno(), 1000, out, stamps) == (100, 0, 0)
    assert [d for d, _ in out] == [bytes([i]) for i in range(100)]
    assert len(stamps) == 100 and stamps == sorted(stamps)
    assert before <= stamps[0] and stamps[-1] <= after
    stamps.clear()
    assert helper.recv_batch(plain.fileno(), 1000, [], stamps) == (100, 0, 0)
    assert stamps == [0] * 100
    with pytest.raises(TypeError, match="stamps must be a list or None"):
        helper.recv_batch(plain.fileno(), 10, [], ())
    for sock in (stamped, plain, client):
        sock.close()


@pytest.mark.parametrize("setting", ["on", "off"])
async def test_drivers_exchange_srtp_on_either_path(
    setting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(fastpath.ENV, setting)
    with trio.fail_after(30):
        for direct in (False, True):  # RTP as events, and through the mux's RTP handler
            await test_udp_driver.test_client_and_mux_drivers_exchange_srtp(direct)


def test_without_the_helper_the_reference_path_runs_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(fastpath, "_module", None)
    monkeypatch.setattr(fastpath, "_reason", "not built (test)")
    monkeypatch.setattr(fastpath, "_logged", False)
    assert not fastpath.enabled()
    with caplog.at_level("WARNING", logger="router.fastpath"):
        fastpath.log_choice()
        fastpath.log_choice()  # once per process
    assert [r.getMessage() for r in caplog.records] == [
        "Python reference path: compiled fast path not built (test)"]
    material = os.urandom(exporter_length(AEAD_AES_128_GCM))
    keys = split_keying_material(material, AEAD_AES_128_GCM, is_client=True)
    assert not SrtpContext(AEAD_AES_128_GCM, *keys).fast
    sock = udp_socket()
    assert not UdpDriver(sock, _Null(), lambda: None).fast  # type: ignore[arg-type]
    sock.close()


def test_bench_fastpath_measures_every_loop_both_ways(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from control.cli import main

    assert main(["bench", "fastpath", "--repeats", "2", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)["figures"]
    assert [f["case"].split(" (")[0] for f in figures] == [
        "srtp protect", "udp send", "udp receive", "SRTP ingest", "one-byte extension rewrite",
        "fan-out", "in-order route", "copy flush", "TWCC feedback, 60 packets",
        "transport-wide sequence read", "TWCC decode, 60 packets",
        "TWCC build for a publisher, 50 packets", "wakeup"]
    assert all(f["python_us"] > 0 and f["compiled_us"] > 0 for f in figures)
    assert main(["bench", "fastpath", "--repeats", "0"]) == 2
    assert "--repeats must be 1-1000" in capsys.readouterr().err
