"""Micro-benchmarks of the RTP/RTCP codecs (``router.rtp``) for the ``regio bench`` runner.

``cases()`` returns named zero-argument callables; the runner times them. Inputs are built once
inside ``cases()`` so importing this module costs nothing beyond importing ``router.rtp``.
"""

from __future__ import annotations

from collections.abc import Callable


def cases() -> list[tuple[str, Callable[[], object]]]:
    """Named zero-argument callables covering the forwarder's hot path and RTCP parsing."""
    from router.rtp import (
        GenericNack,
        HeaderExtension,
        ReceiverReport,
        Remb,
        ReportBlock,
        RtpPacket,
        Sdes,
        SdesChunk,
        SdesItem,
        SenderReport,
        TransportCc,
        build_rtcp_compound,
        find_rtp_extension,
        is_rtcp,
        make_extension_block,
        parse_rtcp_compound,
        read_rtp_header_fields,
        set_rtp_ssrc_seq_timestamp,
    )

    rtp = RtpPacket(
        payload_type=96,
        sequence_number=4242,
        timestamp=90000,
        ssrc=0x1A2B3C4D,
        marker=True,
        extension=make_extension_block(
            (
                HeaderExtension(2, b"\x12\x34\x56"),  # abs-send-time
                HeaderExtension(3, b"\x01\x04"),  # transport-wide-cc
                HeaderExtension(4, b"0"),  # mid
            )
        ),
        payload=bytes(1100),
    ).build()
    rtp_mut = bytearray(rtp)
    sr_sdes = build_rtcp_compound(
        [
            SenderReport(1, 0xE8D4A51000000000, 90000, 100, 110000, (ReportBlock(2, 3, 4, 5),)),
            Sdes((SdesChunk(1, (SdesItem(1, b"Vc3Y2sTxGg2kQAb8"),)),)),
        ]
    )
    rr_remb_nack = build_rtcp_compound(
        [
            ReceiverReport(1, (ReportBlock(2, 3, 4, 5, 6, 7, 8),)),
            Remb(1, 2_500_000, (2, 3)),
            GenericNack.from_seqs(1, 2, [100, 101, 105, 140]),
        ]
    )
    twcc = TransportCc.from_deltas(
        1, 2, 1000, 12345, 7, [None if i % 17 == 5 else (i * 7) % 300 for i in range(60)]
    ).build()

    def set_fields() -> None:
        set_rtp_ssrc_seq_timestamp(rtp_mut, 0x55667788, 999, 12345678)

    return [
        ("RTP header fields read (ssrc, seq, ts, pt, marker)", lambda: read_rtp_header_fields(rtp)),
        ("RTP in-place rewrite (ssrc, seq, ts)", set_fields),
        ("RTP find transport-wide-cc extension", lambda: find_rtp_extension(rtp, 3)),
        ("RTP/RTCP classify", lambda: is_rtcp(rtp)),
        ("RTP full parse with extensions", lambda: RtpPacket.parse(rtp)),
        ("RTCP compound parse (SR+SDES)", lambda: parse_rtcp_compound(sr_sdes)),
        ("RTCP compound parse (RR+REMB+NACK)", lambda: parse_rtcp_compound(rr_remb_nack)),
        ("TWCC feedback parse", lambda: parse_rtcp_compound(twcc)),
    ]


if __name__ == "__main__":
    import timeit

    for name, fn in cases():
        number = 20000
        seconds = min(timeit.repeat(fn, number=number, repeat=3))
        print(f"{name:55s} {seconds / number * 1e6:8.2f} µs")
