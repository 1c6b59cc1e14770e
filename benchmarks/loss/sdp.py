"""SDP of the loss bench's clients: an audio+video publisher offer that negotiates what
Chromium does (mid, abs-send-time, transport-wide-cc; nack, pli, transport-cc), and subscriber
answers that accept the router's extensions, so it numbers packets and expects feedback."""

from __future__ import annotations

from benchmarks.media import CHROMIUM_AUDIO, CHROMIUM_VIDEO
from benchmarks.sfu import sdp as sfu_sdp
from router.sdp import describe, parse_sdp


def publisher_offer(ufrag: str, pwd: str, fingerprint: str, audio_ssrc: int,
                    video_ssrc: int, rids: tuple[str, ...] = ()) -> str:
    """sendonly Opus and VP8 in one BUNDLE group, Chromium's extension ids; with ``rids``,
    the video is simulcast as Chromium offers it (``a=rid`` per layer, ``a=simulcast``, no
    SSRC lines: the router learns each layer's SSRC from the rid extension)."""
    lines = ["v=0", "o=- 4611731400430051337 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
             "a=group:BUNDLE 0 1", "a=extmap-allow-mixed", "a=msid-semantic: WMS s1"]

    def common(mid: str, extmaps: list[str]) -> list[str]:
        return ["c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0", f"a=ice-ufrag:{ufrag}",
                f"a=ice-pwd:{pwd}", "a=ice-options:trickle", f"a=fingerprint:{fingerprint}",
                "a=setup:actpass", f"a=mid:{mid}", *(f"a=extmap:{e}" for e in extmaps),
                "a=sendonly", "a=rtcp-mux"]

    lines += ["m=audio 9 UDP/TLS/RTP/SAVPF 111", *common("0", CHROMIUM_AUDIO.extmaps()),
              "a=msid:s1 a1", "a=rtpmap:111 opus/48000/2", "a=rtcp-fb:111 transport-cc",
              "a=fmtp:111 minptime=10;useinbandfec=1", f"a=ssrc:{audio_ssrc} cname:bench"]
    lines += ["m=video 9 UDP/TLS/RTP/SAVPF 96", *common("1", CHROMIUM_VIDEO.extmaps()),
              "a=msid:s1 v1", "a=rtcp-rsize", "a=rtpmap:96 VP8/90000",
              "a=rtcp-fb:96 goog-remb", "a=rtcp-fb:96 transport-cc", "a=rtcp-fb:96 ccm fir",
              "a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli"]
    if rids:
        lines += [f"a=rid:{rid} send" for rid in rids]
        lines.append(f"a=simulcast:send {';'.join(rids)}")
    else:
        lines.append(f"a=ssrc:{video_ssrc} cname:bench")
    return "\r\n".join(lines) + "\r\n"


def subscriber_answer(offer: str, ufrag: str, pwd: str, fingerprint: str) -> tuple[str, int | None]:
    """recvonly answer accepting the offered extensions (the SFU bench's answer); also the
    transport-cc id, if any."""
    answer = sfu_sdp.subscriber_answer(offer, ufrag, pwd, fingerprint, accept_extensions=True)
    twcc = next((ext.id for mi in describe(parse_sdp(offer)).media if not mi.rejected
                 for ext in mi.extensions
                 if ext.uri.endswith("transport-wide-cc-extensions-01")), None)
    return answer, twcc
