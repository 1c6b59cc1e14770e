"""Binding an SSRC nobody signalled to a track and layer (the slow path of ``route_rtp``).

Browsers sending simulcast by rid signal no SSRCs, and a restarted sender picks a new one, so
the first packet of an unknown SSRC is matched by its MID header extension (the m-section) and
its RID / repaired-RID (the layer, and whether it is RTX). Only the publisher's own tracks are
searched, so a participant can never inject media into someone else's track.
"""

from __future__ import annotations

from router.forwarding.specs import REPAIRED_RTP_STREAM_ID, RTP_STREAM_ID, SDES_MID
from router.forwarding.state import Layer, Participant, Track
from router.rtp import find_rtp_extension

__all__ = ["locate_ssrc"]


def locate_ssrc(part: Participant, packet: bytes, pt: int) -> tuple[Track, Layer, bool] | None:
    """``(track, layer, is_rtx)`` for a packet of an unknown SSRC, or None.

    Raises :class:`~router.rtp.RtpDecodeError` if the extension block is malformed.
    """
    track: Track | None = None
    values: dict[int, bytes | None] = {}
    for candidate in part.tracks.values():
        mid_id = candidate.extensions.get(SDES_MID)
        if mid_id is None or candidate.spec.mid is None:
            continue
        if mid_id not in values:
            values[mid_id] = _extension_value(packet, mid_id)
        if values[mid_id] == candidate.spec.mid.encode():
            track = candidate
            break
    if track is None:
        # No MID (e.g. the sender stopped sending it): accept only an unambiguous match.
        matches = [
            t
            for t in part.tracks.values()
            if (pt in t.pts or pt in t.spec.rtx_payload_types)
            and any(layer.stream is None for layer in t.layers)
        ]
        if len(matches) != 1:
            return None
        track = matches[0]
    rid = _extension_value(packet, track.extensions.get(RTP_STREAM_ID))
    rrid = _extension_value(packet, track.extensions.get(REPAIRED_RTP_STREAM_ID))
    is_rtx = rrid is not None or pt in track.spec.rtx_payload_types
    if not is_rtx and pt not in track.pts:
        return None
    name = rrid if rrid is not None else rid
    layer: Layer | None
    if name is not None:
        layer = next(
            (x for x in track.layers if x.rid is not None and x.rid.encode() == name), None
        )
    elif len(track.layers) == 1:
        layer = track.layers[0]
    else:
        layer = (
            next((x for x in track.layers if (x.rtx if is_rtx else x.stream) is None), None)
            if sum(1 for x in track.layers if x.stream is None) == 1
            else None
        )
    if layer is None:
        return None
    return track, layer, is_rtx


def _extension_value(packet: bytes, ext_id: int | None) -> bytes | None:
    if ext_id is None:
        return None
    found = find_rtp_extension(packet, ext_id)
    if found is None:
        return None
    offset, length = found
    return packet[offset : offset + length]
