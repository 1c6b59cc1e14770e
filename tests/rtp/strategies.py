"""Hypothesis strategies producing valid codec values for round-trip properties."""

from __future__ import annotations

from hypothesis import strategies as st

from router.rtp import (
    App,
    Bye,
    ExtensionBlock,
    Fir,
    FirEntry,
    GenericNack,
    HeaderExtension,
    NackItem,
    Pli,
    RawRtcpPacket,
    ReceiverReport,
    Remb,
    ReportBlock,
    RtcpPacket,
    RtpPacket,
    Sdes,
    SdesChunk,
    SdesItem,
    SenderReport,
    TransportCc,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
words = st.integers(0, 6).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))

one_byte_ext = st.builds(HeaderExtension, st.integers(1, 14), st.binary(min_size=1, max_size=16))
two_byte_ext = st.builds(HeaderExtension, st.integers(1, 255), st.binary(max_size=40))

extension_blocks = st.one_of(
    st.builds(
        ExtensionBlock,
        st.just(0xBEDE),
        st.lists(one_byte_ext, max_size=6).map(tuple),
    ),
    st.builds(
        ExtensionBlock,
        st.integers(0x1000, 0x100F),
        st.lists(two_byte_ext, max_size=6).map(tuple),
    ),
    st.builds(
        ExtensionBlock,
        u16.filter(lambda p: p != 0xBEDE and p & 0xFFF0 != 0x1000),
        st.just(()),
        words,
    ),
)

rtp_packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=u16,
    timestamp=u32,
    ssrc=u32,
    marker=st.booleans(),
    csrcs=st.lists(u32, max_size=15).map(tuple),
    extension=st.none() | extension_blocks,
    payload=st.binary(max_size=64),
    padding_size=st.integers(0, 255),
)

report_blocks = st.builds(
    ReportBlock,
    u32,
    u8,
    st.integers(-0x800000, 0x7FFFFF),
    u32,
    u32,
    u32,
    u32,
)
reports = st.lists(report_blocks, max_size=4).map(tuple)

sender_reports = st.builds(
    SenderReport, u32, st.integers(0, 2**64 - 1), u32, u32, u32, reports, words
)
receiver_reports = st.builds(ReceiverReport, u32, reports, words)
sdes = st.builds(
    Sdes,
    st.lists(
        st.builds(
            SdesChunk,
            u32,
            st.lists(
                st.builds(SdesItem, st.integers(1, 255), st.binary(max_size=30)), max_size=4
            ).map(tuple),
        ),
        max_size=4,
    ).map(tuple),
)
byes = st.builds(Bye, st.lists(u32, max_size=31).map(tuple), st.none() | st.binary(max_size=255))
apps = st.builds(App, st.integers(0, 31), u32, st.binary(min_size=4, max_size=4), words)
nacks = st.builds(
    GenericNack, u32, u32, st.lists(st.builds(NackItem, u16, u16), max_size=8).map(tuple)
)
plis = st.builds(Pli, u32, u32)
firs = st.builds(Fir, u32, st.lists(st.builds(FirEntry, u32, u8), max_size=4).map(tuple), u32)
rembs = st.builds(
    Remb,
    u32,
    st.builds(lambda m, e: m << e, st.integers(0, (1 << 18) - 1), st.integers(0, 63)),
    st.lists(u32, max_size=8).map(tuple),
    u32,
)


@st.composite
def twcc_packets(draw: st.DrawFn) -> TransportCc:
    """Statuses with realistic runs and mixes; deltas matching each status."""
    runs = draw(
        st.lists(
            st.tuples(st.integers(0, 3), st.sampled_from([1, 1, 2, 3, 7, 15, 40, 300])),
            max_size=12,
        )
    )
    statuses = bytes(s for s, n in runs for _ in range(n))[:2000]
    deltas = []
    for s in statuses:
        if s == 1:
            deltas.append(draw(u8))
        elif s == 2:
            deltas.append(draw(st.integers(-0x8000, 0x7FFF)))
    return TransportCc(
        draw(u32),
        draw(u32),
        draw(u16),
        draw(st.integers(-0x800000, 0x7FFFFF)),
        draw(u8),
        statuses,
        tuple(deltas),
    )


@st.composite
def raw_rtcp(draw: st.DrawFn) -> RawRtcpPacket:
    """Unknown packet types (XR, 190s, ...) and unknown feedback FMTs."""
    pt, count = draw(
        st.one_of(
            st.tuples(st.sampled_from([192, 193, 195, 207, 208, 210, 223]), st.integers(0, 31)),
            st.tuples(st.just(205), st.sampled_from([0, 2, 3, 4, 5, 8, 31])),
            st.tuples(st.just(206), st.sampled_from([0, 2, 3, 5, 6, 7, 31])),
        )
    )
    body = draw(words)
    if pt >= 205 and len(body) < 8:
        body += bytes(8 - len(body))
    return RawRtcpPacket(bytes([0x80 | count, pt]) + (len(body) // 4).to_bytes(2, "big") + body)


rtcp_packets: st.SearchStrategy[RtcpPacket] = st.one_of(
    sender_reports,
    receiver_reports,
    sdes,
    byes,
    apps,
    nacks,
    plis,
    firs,
    rembs,
    twcc_packets(),
    raw_rtcp(),
)
