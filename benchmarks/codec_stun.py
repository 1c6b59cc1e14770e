"""Micro-benchmarks of the STUN/TURN codec for the lead's benchmark runner.

``cases()`` returns named zero-argument callables; the runner times them. Inputs are built once
inside ``cases()`` so only the operation under test is measured, and importing this module costs
nothing until ``cases()`` runs.
"""

from __future__ import annotations

from collections.abc import Callable


def cases() -> list[tuple[str, Callable[[], object]]]:
    """Named operations on realistic WebRTC/TURN packets."""
    from ipaddress import IPv4Address

    from turn import stun

    tid = bytes.fromhex("b7e7a701bc34d686fa87dfae")
    ice_key = stun.short_term_key("Ujb3Cm0xXnqQ8QkUB3Yk7Whd")
    request = stun.StunMessage(
        stun.Method.BINDING,
        stun.MessageClass.REQUEST,
        tid,
        (
            stun.Username("E2vW:f6Cj"),
            stun.Priority(1853824767),
            stun.IceControlling(0x1234_5678_9ABC_DEF0),
            stun.UseCandidate(),
        ),
    ).encode(integrity_key=ice_key, fingerprint=True)

    def parse_verify() -> object:
        msg = stun.parse_message(request)  # checks FINGERPRINT
        msg.verify_integrity(ice_key)
        return msg

    def peek() -> object:
        return stun.is_stun(request) and stun.peek_header(request)

    mapped = stun.XorMappedAddress(IPv4Address("203.0.113.77"), 54321)

    def build_response() -> object:
        return stun.StunMessage(
            stun.Method.BINDING, stun.MessageClass.SUCCESS, tid, (mapped,)
        ).encode(integrity_key=ice_key, fingerprint=True)

    turn_key = stun.long_term_key("1700000000:alice", "eu.regio.example", "c2VjcmV0")
    send = stun.StunMessage(
        stun.Method.SEND,
        stun.MessageClass.INDICATION,
        tid,
        (stun.XorPeerAddress(IPv4Address("198.51.100.9"), 40000), stun.Data(bytes(1100))),
    ).encode()
    allocate = stun.StunMessage(
        stun.Method.ALLOCATE,
        stun.MessageClass.REQUEST,
        tid,
        (
            stun.RequestedTransport(stun.TRANSPORT_UDP),
            stun.Lifetime(600),
            stun.Username("1700000000:alice"),
            stun.Realm("eu.regio.example"),
            stun.Nonce("0123456789abcdef0123"),
        ),
    ).encode(integrity_key=turn_key, fingerprint=True)

    def parse_allocate() -> object:
        msg = stun.parse_message(allocate)
        msg.verify_integrity(turn_key)
        return msg

    channel = stun.encode_channel_data(0x4001, bytes(1100))

    def channel_decode() -> object:
        return stun.decode_channel_data(channel)

    def channel_peek() -> object:
        return stun.is_channel_data(channel) and stun.peek_channel_data(channel)

    def channel_encode() -> object:
        return stun.encode_channel_data(0x4001, bytes(1100))

    stream = (channel + request + stun.encode_channel_data(0x4002, bytes(161), pad=True)) * 10

    def reassemble() -> object:
        return stun.StreamReassembler().feed(stream)

    return [
        ("STUN binding request parse + integrity check + fingerprint", parse_verify),
        ("STUN is_stun + peek_header", peek),
        ("STUN binding success response encode (MI + FP)", build_response),
        ("TURN Allocate parse + long-term integrity + fingerprint", parse_allocate),
        ("TURN Send indication parse (1100 B DATA)", lambda: stun.parse_message(send)),
        ("ChannelData decode (1100 B)", channel_decode),
        ("ChannelData is_channel_data + peek (1100 B)", channel_peek),
        ("ChannelData encode (1100 B)", channel_encode),
        ("TCP stream reassembly (30 frames, 13 KB)", reassemble),
    ]
