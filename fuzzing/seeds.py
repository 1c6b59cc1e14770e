"""``python -m fuzzing.seeds``: (re)write the committed seed corpora of fuzzing/corpus/.

Seeds are a few valid inputs of each kind, built with the codecs themselves (and, for SDP, the
Chromium offers the SDP tests use), so the fuzzer starts from inputs that reach deep paths
instead of discovering every magic number on its own. They are kept small: the corpus is
committed, and the pytest smoke run replays all of it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from pathlib import Path
from typing import Any

from fuzzing.run import CORPUS

REPO = CORPUS.parent.parent
SDP_FIXTURES = ("chromium_av_sendonly_offer.sdp", "chromium_simulcast_offer.sdp")


def _sdp_fixture(name: str) -> bytes:
    lines = (REPO / "tests" / "sdp" / "data" / name).read_text(encoding="utf-8").splitlines()
    return "".join(line + "\r\n" for line in lines if not line.startswith("#")).encode()


def stun_turn_seeds() -> list[bytes]:
    from turn.stun import (
        ChannelNumber,
        Data,
        Lifetime,
        MessageClass,
        Method,
        RequestedTransport,
        Software,
        StunMessage,
        XorPeerAddress,
        encode_channel_data,
    )

    tid = bytes(range(12))
    peer = XorPeerAddress(ipaddress.IPv4Address("8.8.8.8"), 5000)

    def request(method: int, *attrs: object) -> bytes:
        return bytes(StunMessage(method, MessageClass.REQUEST, tid, attrs).encode(  # type: ignore[arg-type]
            fingerprint=True))

    return [
        request(Method.BINDING),
        request(Method.ALLOCATE, RequestedTransport(17), Lifetime(600), Software("seed")),
        request(Method.CREATE_PERMISSION, peer),
        request(Method.CHANNEL_BIND, ChannelNumber(0x4000), peer),
        request(Method.REFRESH, Lifetime(0)),
        bytes(StunMessage(Method.SEND, MessageClass.INDICATION, tid,
                          (peer, Data(b"hello"))).encode()),
        bytes(encode_channel_data(0x4000, b"hello world")),
    ]


def rtp_rtcp_seeds() -> list[bytes]:
    from router.rtp import (
        Bye,
        Fir,
        FirEntry,
        GenericNack,
        HeaderExtension,
        Pli,
        ReceiverReport,
        ReportBlock,
        Sdes,
        SdesChunk,
        SdesItem,
        SdesItemType,
        SenderReport,
        build_rtcp_compound,
        make_extension_block,
    )
    from router.rtp.rtcp_feedback import Remb
    from router.rtp.rtp_packet import RtpPacket
    from router.rtp.twcc import TransportCc

    one_byte = make_extension_block([HeaderExtension(1, b"\x12\x34\x56"),
                                     HeaderExtension(3, b"\x00\x01")])
    two_byte = make_extension_block([HeaderExtension(1, b""), HeaderExtension(20, b"x" * 20)])
    sdes = Sdes((SdesChunk(0x1111, (SdesItem(SdesItemType.CNAME, b"seed"),)),))
    return [
        RtpPacket(96, 1000, 90000, 0x1111, marker=True, payload=b"\x90\x80" + bytes(30)).build(),
        RtpPacket(111, 7, 960, 0x2222, extension=one_byte, payload=b"opus").build(),
        RtpPacket(96, 8, 3000, 0x3333, csrcs=(1, 2), extension=two_byte, payload=b"v",
                  padding_size=4).build(),
        build_rtcp_compound([SenderReport(0x1111, 0x0102030405060708, 90000, 10, 1000), sdes]),
        build_rtcp_compound([ReceiverReport(0x4444, (ReportBlock(0x1111, 12, 3, 1005),)),
                             sdes]),
        build_rtcp_compound([GenericNack.from_seqs(0x4444, 0x1111, [1000, 1001, 1005]),
                             Pli(0x4444, 0x1111), Fir(0x4444, (FirEntry(0x1111, 1),))]),
        build_rtcp_compound([Remb(0x4444, 1_000_000, (0x1111,)),
                             TransportCc.from_deltas(0x4444, 0x1111, 100, 5, 0,
                                                     [4, None, 8, 300, None])]),
        build_rtcp_compound([Bye((0x1111,), b"bye")]),
    ]


def sdp_seeds() -> list[bytes]:
    return [_sdp_fixture(name) for name in SDP_FIXTURES]


def signaling_seeds() -> list[bytes]:
    offer = _sdp_fixture(SDP_FIXTURES[0]).decode()
    lines: list[list[dict[str, Any]]] = [
        [{"type": "join", "token": "@token@"}, {"type": "publish", "sdp": offer}],
        [{"type": "join", "token": "@token@", "room_options": {"chat": True}},
         {"type": "chat", "text": "hello"}, {"type": "ping", "id": 1}, {"type": "leave"}],
        [{"type": "join", "token": "@token@"},
         {"type": "relay", "to": "p1", "payload": {"kind": "candidate",
                                                   "candidate": {"candidate": "c", "sdpMid": "0"}}},
         {"type": "answer", "sdp": "v=0"}],
        [{"type": "ping"}, {"type": "join", "token": "not.a.token"}],
    ]
    return [b"\n".join(json.dumps(m, separators=(",", ":")).encode() for m in seed)
            for seed in lines]


def frontdoor_http_seeds() -> list[bytes]:
    body = b'{"policy":"eea","size":"small","name":"Ada"}'
    join = (b"POST /v1/rooms/team/join HTTP/1.1\r\nHost: regio\r\n"
            b"X-Forwarded-For: 81.169.145.1, 10.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return [
        join,
        join + b"GET /healthz HTTP/1.1\r\nHost: regio\r\n\r\n" + join,
        b"POST /v1/rooms/a%2Db/join HTTP/1.0\r\nForwarded: for=\"[2001:db8::1]:4711\";proto=https"
        b"\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /r/room1?name=Ada HTTP/1.1\r\nHost: regio\r\nConnection: close\r\n\r\n",
    ]


SEEDS = {
    "stun_turn": stun_turn_seeds,
    "rtp_rtcp": rtp_rtcp_seeds,
    "sdp": sdp_seeds,
    "signaling": signaling_seeds,
    "frontdoor_http": frontdoor_http_seeds,
}


def write_seeds(root: Path = CORPUS) -> dict[str, int]:
    """Write every target's seeds (named by content hash, as libFuzzer names its own)."""
    counts: dict[str, int] = {}
    for name, make in SEEDS.items():
        directory = root / name
        directory.mkdir(parents=True, exist_ok=True)
        for seed in make():
            (directory / f"seed-{hashlib.sha1(seed).hexdigest()[:16]}").write_bytes(seed)
        counts[name] = len(list(directory.iterdir()))
    return counts


if __name__ == "__main__":
    for target, count in write_seeds().items():
        print(f"{target}: {count} seeds")
