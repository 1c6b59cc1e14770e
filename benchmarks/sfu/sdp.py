"""SDP a synthetic WebRTC client writes (the SFU benchmark's clients and the router tests'):
a publisher offer shaped like Chromium's and recvonly answers to the router's subscriber offers."""

from __future__ import annotations

from benchmarks.media.extensions import (
    AUDIO_LEVEL,
    CHROMIUM_AUDIO,
    CHROMIUM_VIDEO,
    ExtensionIds,
)
from router.sdp import describe, parse_sdp
from router.sdp.capabilities import ABS_SEND_TIME, RTP_STREAM_ID, SDES_MID, TRANSPORT_WIDE_CC


def publisher_offer(ufrag: str, pwd: str, fingerprint: str, audio_ssrc: int,
                    video_ssrc: int | None = None, cname: str = "synthetic", *,
                    chromium_extensions: bool = False) -> str:
    """A sendonly publisher offer shaped like Chromium's: BUNDLE, rtcp-mux, mid extension,
    signalled SSRCs, actpass; Opus, and VP8 with RTX (``video_ssrc`` and ``video_ssrc + 1``)
    when ``video_ssrc`` is given. ``chromium_extensions`` offers every header extension
    Chromium offers with its ids (audio level, abs-send-time, transport-wide-cc, mid) and
    transport-cc feedback, instead of mid alone."""
    mids = "0 1" if video_ssrc else "0"
    lines = ["v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
             f"a=group:BUNDLE {mids}", "a=extmap-allow-mixed", "a=msid-semantic: WMS s1"]

    def common(mid: str, ids: ExtensionIds) -> list[str]:
        extmaps = ([f"a=extmap:{m}" for m in ids.extmaps()] if chromium_extensions
                   else ["a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid"])
        return ["c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0", f"a=ice-ufrag:{ufrag}",
                f"a=ice-pwd:{pwd}", "a=ice-options:trickle", f"a=fingerprint:{fingerprint}",
                "a=setup:actpass", f"a=mid:{mid}", *extmaps, "a=sendonly"]

    twcc_fb = ["a=rtcp-fb:{} transport-cc"] if chromium_extensions else []

    lines += ["m=audio 9 UDP/TLS/RTP/SAVPF 111", *common("0", CHROMIUM_AUDIO), "a=msid:s1 a1",
              "a=rtcp-mux", "a=rtpmap:111 opus/48000/2", *(f.format(111) for f in twcc_fb),
              "a=fmtp:111 minptime=10;useinbandfec=1",
              f"a=ssrc:{audio_ssrc} cname:{cname}"]
    if video_ssrc:
        video_ids = ExtensionIds(rid=None) if chromium_extensions else CHROMIUM_VIDEO
        lines += ["m=video 9 UDP/TLS/RTP/SAVPF 96 97", *common("1", video_ids), "a=msid:s1 v1",
                  "a=rtcp-mux", "a=rtcp-rsize", "a=rtpmap:96 VP8/90000",
                  *(f.format(96) for f in twcc_fb),
                  "a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli", "a=rtcp-fb:96 ccm fir",
                  "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
                  f"a=ssrc-group:FID {video_ssrc} {video_ssrc + 1}",
                  f"a=ssrc:{video_ssrc} cname:{cname}", f"a=ssrc:{video_ssrc + 1} cname:{cname}"]
    return "\r\n".join(lines) + "\r\n"


def negotiated_extensions(sdp: str, kind: str) -> ExtensionIds:
    """The extension ids an SDP (an answer to our offer, or the router's offer to a
    subscriber) settles for the first active ``kind`` section; absent ones are None."""
    media = next((mi for mi in describe(parse_sdp(sdp)).media
                  if mi.kind == kind and not mi.rejected), None)
    ids = {e.uri: e.id for e in media.extensions} if media else {}
    return ExtensionIds(mid=ids.get(SDES_MID), abs_send_time=ids.get(ABS_SEND_TIME),
                        transport_cc=ids.get(TRANSPORT_WIDE_CC), rid=ids.get(RTP_STREAM_ID),
                        audio_level=ids.get(AUDIO_LEVEL))


def rtx_payload_types(sdp: str) -> frozenset[int]:
    """Payload types the SDP maps to ``rtx`` (retransmissions, RFC 4588)."""
    return frozenset(codec.payload_type for mi in describe(parse_sdp(sdp)).media
                     for codec in mi.codecs if codec.name.lower() == "rtx")


def with_candidate(sdp: str, address: tuple[str, int]) -> str:
    """The SDP with our one host candidate in every active section (no trickle)."""
    line = f"a=candidate:1 1 udp 2130706431 {address[0]} {address[1]} typ host"
    out = []
    for row in sdp.split("\r\n"):
        out.append(row)
        if row.startswith("a=mid:"):
            out += [line, "a=end-of-candidates"]
    return "\r\n".join(out)


def server_transport(sdp: str) -> tuple[str, str, str, tuple[str, int]]:
    """(ufrag, pwd, fingerprint, first IPv4 UDP candidate) of a server's first active section
    (Janus lists link-local IPv6 candidates too)."""
    media = next(mi for mi in describe(parse_sdp(sdp)).media if not mi.rejected)
    t = media.transport
    candidates = [c for c in t.candidates if ":" not in c.address]
    if not (t.ice_ufrag and t.ice_pwd and t.fingerprints and candidates):
        raise ValueError("the server's SDP lacks ICE credentials, fingerprint or an IPv4 "
                         "candidate")
    return (t.ice_ufrag, t.ice_pwd, t.fingerprints[0].value(),
            (candidates[0].address, candidates[0].port))


def subscriber_answer(offer: str, ufrag: str, pwd: str, fingerprint: str, *,
                      accept_extensions: bool = False) -> str:
    """recvonly for every active section, port 0 for disabled ones, one BUNDLE group;
    ``accept_extensions`` accepts every offered header extension (as Chromium does for the
    ones it knows)."""
    desc = parse_sdp(offer)
    info = describe(desc)
    accepted = [mi.mid for mi in info.media if not mi.rejected]
    lines = ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0"]
    if accepted:
        lines.append(f"a=group:BUNDLE {' '.join(str(a) for a in accepted)}")
    for mi, md in zip(info.media, desc.media, strict=True):
        if mi.rejected:
            lines += [f"m={mi.kind} 0 {mi.proto} {md.formats[0]}", "c=IN IP4 0.0.0.0",
                      f"a=mid:{mi.mid}", "a=inactive"]
            continue
        lines += [f"m={mi.kind} 9 {mi.proto} {' '.join(md.formats)}", "c=IN IP4 0.0.0.0",
                  f"a=ice-ufrag:{ufrag}", f"a=ice-pwd:{pwd}", f"a=fingerprint:{fingerprint}",
                  "a=setup:active", f"a=mid:{mi.mid}", "a=recvonly", "a=rtcp-mux"]
        kept = ("rtpmap", "fmtp", "rtcp-fb", "extmap") if accept_extensions \
            else ("rtpmap", "fmtp", "rtcp-fb")
        lines += [f"a={a.name}:{a.value}" for a in md.attributes if a.name in kept]
    return "\r\n".join(lines) + "\r\n"


def router_transport(sdp: str) -> tuple[str, str, str, tuple[str, int]]:
    """(ufrag, pwd, fingerprint, candidate address) of the router's first active section."""
    media = next(mi for mi in describe(parse_sdp(sdp)).media if not mi.rejected)
    t = media.transport
    if not (t.ice_ufrag and t.ice_pwd and t.fingerprints and t.candidates):
        raise ValueError("the router's SDP lacks ICE credentials, fingerprint or candidate")
    cand = t.candidates[0]
    return t.ice_ufrag, t.ice_pwd, t.fingerprints[0].value(), (cand.address, cand.port)


__all__ = ["negotiated_extensions", "publisher_offer", "router_transport", "rtx_payload_types",
           "server_transport", "subscriber_answer", "with_candidate"]
