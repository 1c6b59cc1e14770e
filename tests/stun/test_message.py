"""Whole messages: round trips, header and framing errors, integrity, fingerprint, 420, peeks."""

# ruff: noqa: E501  (tables of exact error messages read best one per line)

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.stun.strategies import messages
from turn import stun
from turn.stun import (
    ALGORITHM_SHA256,
    MessageClass,
    Method,
    RawAttribute,
    StunDecodeError,
    StunEncodeError,
    StunIntegrityError,
    StunMessage,
    encode_message_type,
    long_term_key,
    parse_message,
)

TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")
KEY = b"secret-key"


def binding(*attributes: stun.Attribute) -> StunMessage:
    return StunMessage(Method.BINDING, MessageClass.REQUEST, TID, attributes)


def relength(data: bytes) -> bytes:
    """Fix the header length after appending or cutting attributes."""
    return data[:2] + struct.pack(">H", len(data) - 20) + data[4:]


@given(msg=messages, fingerprint=st.booleans(), mi=st.booleans(), mi256=st.booleans())
def test_messages_roundtrip(msg: StunMessage, fingerprint: bool, mi: bool, mi256: bool) -> None:
    wire = msg.encode(
        integrity_key=KEY if mi else None,
        integrity_sha256_key=KEY if mi256 else None,
        fingerprint=fingerprint,
    )
    parsed = parse_message(wire)
    assert parsed == msg
    assert parsed.raw == wire
    # RFC 7983 demux only admits first bytes 0-3 (methods below 0x100) as STUN.
    assert stun.is_stun(wire) is (msg.method < 0x100)
    assert parsed.has_fingerprint is fingerprint
    assert parsed.integrity_ok(KEY) is mi
    assert parsed.integrity_sha256_ok(KEY) is mi256
    header = stun.peek_header(wire)
    assert (header.method, header.cls, header.transaction_id) == (
        msg.method,
        msg.cls,
        msg.transaction_id,
    )
    assert stun.peek_message_type(wire) == encode_message_type(msg.method, msg.cls)
    assert stun.peek_transaction_id(bytearray(wire)) == msg.transaction_id


@given(method=st.integers(0, 0xFFF), cls=st.integers(0, 3))
def test_message_type_interleaving(method: int, cls: int) -> None:
    msg_type = encode_message_type(method, cls)
    assert msg_type < 0x4000
    assert stun.decode_message_type(msg_type) == (method, cls)


@pytest.mark.parametrize(
    ("method", "cls", "msg_type"),
    [
        (Method.BINDING, MessageClass.REQUEST, 0x0001),
        (Method.BINDING, MessageClass.SUCCESS, 0x0101),
        (Method.BINDING, MessageClass.ERROR, 0x0111),
        (Method.ALLOCATE, MessageClass.REQUEST, 0x0003),
        (Method.ALLOCATE, MessageClass.ERROR, 0x0113),
        (Method.SEND, MessageClass.INDICATION, 0x0016),
        (Method.DATA, MessageClass.INDICATION, 0x0017),
        (Method.CHANNEL_BIND, MessageClass.SUCCESS, 0x0109),
        (0xFFF, MessageClass.ERROR, 0x3FFF),
    ],
)
def test_known_message_types(method: int, cls: int, msg_type: int) -> None:
    assert encode_message_type(method, cls) == msg_type


def test_parse_accepts_bytearray_and_memoryview() -> None:
    wire = binding(stun.Software("x")).encode(fingerprint=True)
    assert (
        parse_message(bytearray(wire))
        == parse_message(memoryview(wire))
        == binding(stun.Software("x"))
    )


def test_unknown_method_stays_int() -> None:
    msg = StunMessage(0x123, MessageClass.INDICATION, TID)
    parsed = parse_message(msg.encode())
    assert parsed.method == 0x123 and not isinstance(parsed.method, Method)


# -- exact decode errors -------------------------------------------------------------------

GOOD = binding(stun.Software("abc"), stun.Priority(5)).encode()  # 20 + 8 + 8 bytes


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "STUN message truncated: 0 bytes, the header alone needs 20"),
        (GOOD[:19], "STUN message truncated: 19 bytes, the header alone needs 20"),
        (GOOD[:-4], "STUN message truncated: header says 16 bytes of attributes, 12 present"),
        (GOOD + b"\0" * 4, "STUN message has trailing bytes: header says 16 bytes of attributes, 20 present"),
        (b"\x80" + GOOD[1:], "not a STUN message: first two bits are 0b10, expected 0b00"),
        (b"\x40" + GOOD[1:], "not a STUN message: first two bits are 0b01, expected 0b00"),
        (GOOD[:4] + b"\x21\x12\xa4\x43" + GOOD[8:], "STUN magic cookie is 0x2112a443, expected 0x2112a442"),
        (relength(GOOD + b"\0\0"), "STUN message length 18 is not a multiple of 4 (bad attribute padding)"),
        (relength(GOOD[:20] + b"\x80\x22\x00\x09abcd"), "STUN attribute SOFTWARE at offset 20 truncated: length 9, 4 bytes left in the message"),
        (relength(GOOD[:28] + b"\x00\x24\xff\xff"), "STUN attribute PRIORITY at offset 28 truncated: length 65535, 0 bytes left in the message"),
        (relength(GOOD[:28] + b"\x00\x24\x00\x05\0\0\0\0\0\0\0\0"), "STUN PRIORITY has length 5, expected 4"),
        (relength(GOOD + b"\x00\x08\x00\x10" + bytes(16)), "STUN MESSAGE-INTEGRITY has length 16, expected 20"),
        (relength(GOOD + b"\x00\x1c\x00\x0e" + bytes(16)), "STUN MESSAGE-INTEGRITY-SHA256 has length 14, expected 16-32 and a multiple of 4"),
        (relength(GOOD + b"\x00\x1c\x00\x24" + bytes(36)), "STUN MESSAGE-INTEGRITY-SHA256 has length 36, expected 16-32 and a multiple of 4"),
        (relength(GOOD + b"\x80\x28\x00\x08" + bytes(8)), "STUN FINGERPRINT has length 8, expected 4"),
        (relength(GOOD[:20] + b"\x00\x20\x00\x04\x00\x05\x00\x00"), "STUN XOR-MAPPED-ADDRESS has unknown address family 0x05"),
    ],
)  # fmt: skip
def test_decode_errors_are_exact(data: bytes, message: str) -> None:
    with pytest.raises(StunDecodeError) as info:
        parse_message(data)
    assert str(info.value) == message


def test_example_message_from_the_issue() -> None:
    wire = relength(binding(stun.Data(bytes(20))).encode())
    with pytest.raises(StunDecodeError) as info:
        parse_message(wire[:20] + b"\x00\x13\x00\x14" + bytes(16))
    assert (
        str(info.value) == "STUN message truncated: header says 24 bytes of attributes, 20 present"
    )


def test_peek_header_errors_match_parser() -> None:
    for bad in (GOOD[:5], b"\xc0" + GOOD[1:], GOOD[:4] + bytes(4) + GOOD[8:]):
        with pytest.raises(StunDecodeError) as peeked:
            stun.peek_header(bad)
        with pytest.raises(StunDecodeError) as parsed:
            parse_message(bad)
        assert str(peeked.value) == str(parsed.value)


# -- integrity and fingerprint -------------------------------------------------------------


def test_fingerprint_tamper_detected() -> None:
    wire = bytearray(binding(stun.Software("abc")).encode(fingerprint=True))
    wire[25] ^= 0x01  # inside SOFTWARE
    with pytest.raises(
        StunDecodeError,
        match=r"^STUN FINGERPRINT mismatch: message carries 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}$",
    ):
        parse_message(bytes(wire))
    # A caller that does its own check (or none) can still read it.
    assert parse_message(bytes(wire), check_fingerprint=False).has_fingerprint


@pytest.mark.parametrize("position", range(0, 60))
def test_integrity_tamper_detected_at_every_covered_byte(position: int) -> None:
    msg = binding(stun.Username("user:name"), stun.Priority(7), stun.IceControlling(9))
    wire = msg.encode(integrity_key=KEY)
    tampered = bytearray(wire)
    tampered[position] ^= 0x40
    try:
        parsed = parse_message(bytes(tampered))
    except StunDecodeError:
        return  # the header or an attribute no longer parses: also a rejection
    assert not parsed.integrity_ok(KEY)
    with pytest.raises(StunIntegrityError):
        parsed.verify_integrity(KEY)


def test_missing_integrity_errors() -> None:
    parsed = parse_message(binding().encode())
    assert not parsed.integrity_ok(KEY)
    with pytest.raises(StunIntegrityError, match=r"^STUN message has no MESSAGE-INTEGRITY$"):
        parsed.verify_integrity(KEY)
    with pytest.raises(StunIntegrityError, match=r"^STUN message has no MESSAGE-INTEGRITY-SHA256$"):
        parsed.verify_integrity_sha256(KEY)


def test_sha256_integrity_truncated_and_wrong_key() -> None:
    key = long_term_key("user", "realm", "pass", ALGORITHM_SHA256)
    assert len(key) == 32
    for n in (16, 20, 24, 28, 32):
        parsed = parse_message(
            binding(stun.Username("user")).encode(
                integrity_sha256_key=key, integrity_sha256_length=n
            )
        )
        parsed.verify_integrity_sha256(key)
        assert struct.unpack_from(">HH", parsed.raw, parsed.integrity_sha256_offset) == (0x001C, n)
        with pytest.raises(StunIntegrityError, match=r"^STUN MESSAGE-INTEGRITY-SHA256 mismatch"):
            parsed.verify_integrity_sha256(key[::-1])
    with pytest.raises(StunEncodeError, match="must be 16-32 and a multiple of 4"):
        binding().encode(integrity_sha256_key=key, integrity_sha256_length=18)


def test_both_integrities_and_fingerprint_in_rfc_order() -> None:
    wire = binding(stun.Username("u")).encode(
        integrity_key=KEY, integrity_sha256_key=KEY, fingerprint=True
    )
    types = []
    pos = 20
    while pos < len(wire):
        t, n = struct.unpack_from(">HH", wire, pos)
        types.append(t)
        pos += 4 + n + (-n % 4)
    assert types == [0x0006, 0x0008, 0x001C, 0x8028]
    parsed = parse_message(wire)
    parsed.verify_integrity(KEY)
    parsed.verify_integrity_sha256(KEY)


def test_attributes_after_integrity_are_ignored_and_do_not_break_it() -> None:
    signed = binding(stun.Username("u")).encode(integrity_key=KEY)
    extended = relength(signed + b"\x00\x13\x00\x04DATA" + b"\x7f\x01\x00\x00")
    parsed = parse_message(extended)
    assert parsed.attributes == (stun.Username("u"),)
    assert parsed.unknown_required == ()
    parsed.verify_integrity(KEY)  # length is adjusted to end at MESSAGE-INTEGRITY


def test_attributes_after_fingerprint_are_ignored() -> None:
    wire = binding(stun.Software("s")).encode(fingerprint=True)
    parsed = parse_message(relength(wire + b"\x00\x24\x00\x04\x00\x00\x00\x01"))
    assert parsed.attributes == (stun.Software("s"),)
    assert parsed.has_fingerprint


def test_second_integrity_is_ignored() -> None:
    signed = binding().encode(integrity_key=KEY)
    doubled = relength(signed + b"\x00\x08\x00\x14" + bytes(20))
    parse_message(doubled).verify_integrity(KEY)


def test_integrity_sha256_after_sha1_verifies_both() -> None:
    sha1_only = binding(stun.Username("u")).encode(integrity_key=KEY)
    both = parse_message(
        binding(stun.Username("u")).encode(integrity_key=KEY, integrity_sha256_key=KEY)
    )
    # MESSAGE-INTEGRITY is the same as without the SHA-256 one: its length was adjusted.
    assert both.raw[4 : len(sha1_only)] == sha1_only[4:]
    both.verify_integrity(KEY)
    both.verify_integrity_sha256(KEY)


def test_encode_errors() -> None:
    with pytest.raises(StunEncodeError, match=r"^STUN transaction id must be 12 bytes"):
        StunMessage(Method.BINDING, MessageClass.REQUEST, b"short").encode()
    with pytest.raises(StunEncodeError, match=r"^STUN method 4096 is not in 0-0xfff$"):
        StunMessage(0x1000, MessageClass.REQUEST, TID).encode()
    with pytest.raises(StunEncodeError, match=r"^STUN class 4 is not in 0-3$"):
        StunMessage(1, 4, TID).encode()  # type: ignore[arg-type]
    with pytest.raises(
        StunEncodeError, match=r"^STUN MESSAGE-INTEGRITY key must be bytes, got str$"
    ):
        binding().encode(integrity_key="k")  # type: ignore[arg-type]
    big = binding(stun.Data(bytes(65000)), stun.Data(bytes(1000)))
    with pytest.raises(
        StunEncodeError, match=r"^STUN message too long: 66008 bytes of attributes, at most 65532$"
    ):
        big.encode()
    fits = binding(stun.Data(bytes(65532 - 4 - 8)))
    assert len(fits.encode(fingerprint=True)) == 20 + 65532
    fits = binding(stun.Data(bytes(65532 - 4)))
    assert len(fits.encode()) == 20 + 65532
    with pytest.raises(StunEncodeError, match=r"^STUN message too long: 65540 bytes"):
        fits.encode(fingerprint=True)


# -- 420 detection -------------------------------------------------------------------------


def test_unknown_comprehension_required_detected_for_420() -> None:
    msg = binding(
        RawAttribute(0x7F01, b"x"),
        RawAttribute(0xC001, b"optional"),
        stun.Username("u"),
        RawAttribute(0x0030, b""),
        RawAttribute(0x7F01, b"again"),
    )
    request = parse_message(msg.encode(integrity_key=KEY))
    assert request.unknown_required == (0x7F01, 0x0030)
    assert request.get(RawAttribute) == RawAttribute(0x7F01, b"x")
    reply = request.error_response(420, stun.UnknownAttributes(request.unknown_required))
    parsed = parse_message(reply.encode(integrity_key=KEY, fingerprint=True))
    assert parsed.cls is MessageClass.ERROR and parsed.method is Method.BINDING
    assert parsed.transaction_id == request.transaction_id
    assert parsed.get(stun.ErrorCode) == stun.ErrorCode(420, "Unknown Attribute")
    assert parsed.get(stun.UnknownAttributes) == stun.UnknownAttributes((0x7F01, 0x0030))


def test_known_and_optional_attributes_are_not_420() -> None:
    assert (
        parse_message(
            binding(stun.Username("u"), RawAttribute(0x8FFF, b"")).encode()
        ).unknown_required
        == ()
    )


def test_response_helpers_and_get_all() -> None:
    req = parse_message(binding(stun.Priority(1), stun.Priority(2)).encode())
    assert req.get_all(stun.Priority) == [stun.Priority(1), stun.Priority(2)]
    assert req.get(stun.Username) is None
    ok = req.response(stun.XorMappedAddress(IPv4Address("203.0.113.5"), 4000))
    assert (ok.cls, ok.transaction_id) == (MessageClass.SUCCESS, TID)
    err = req.error_response(438, stun.Nonce("n"), reason="Stale")
    assert err.attributes == (stun.ErrorCode(438, "Stale"), stun.Nonce("n"))


# -- keys ----------------------------------------------------------------------------------


def test_long_term_keys() -> None:
    import hashlib

    assert long_term_key("user", "realm", "pass") == hashlib.md5(b"user:realm:pass").digest()
    assert (
        long_term_key("user", "realm", "pass", ALGORITHM_SHA256)
        == hashlib.sha256(b"user:realm:pass").digest()
    )
    assert long_term_key("\u00fc", "r", "p") == hashlib.md5("\u00fc:r:p".encode()).digest()
    assert stun.short_term_key("pw") == b"pw"
    assert stun.userhash("u", "r") == hashlib.sha256(b"u:r").digest()
    with pytest.raises(StunEncodeError, match=r"^unknown STUN password algorithm 0x0003$"):
        long_term_key("u", "r", "p", 3)


def test_turn_rest_style_long_term_auth_roundtrip() -> None:
    username, realm, password = "1700000000:alice", "eu.regio.example", "c2VjcmV0LWJhc2U2NA=="
    key = long_term_key(username, realm, password)
    msg = StunMessage(
        Method.ALLOCATE,
        MessageClass.REQUEST,
        TID,
        (
            stun.RequestedTransport(stun.TRANSPORT_UDP),
            stun.Username(username),
            stun.Realm(realm),
            stun.Nonce("abc"),
        ),
    )
    parsed = parse_message(msg.encode(integrity_key=key, fingerprint=True))
    user = parsed.get(stun.Username)
    rlm = parsed.get(stun.Realm)
    assert user is not None and rlm is not None
    parsed.verify_integrity(long_term_key(user.value, rlm.value, password))
    assert not parsed.integrity_ok(long_term_key(user.value, rlm.value, "other"))


@pytest.mark.parametrize(
    ("text", "prepared"),
    [("user", "user"), ("I\u00adX", "IX"), ("\u2168", "IX"), ("a\u00a0b", "a b"), ("\u00aa", "a")],
)
def test_saslprep_maps(text: str, prepared: str) -> None:
    assert stun.saslprep(text) == prepared


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("\u0007", "SASLprep: prohibited character U+0007"),
        ("a\u0221", "SASLprep: unassigned character U+0221"),
        ("\u0627\u0031", "SASLprep: right-to-left text must start and end with RandALCat"),
        ("\u0627a\u0627", "SASLprep: mixes right-to-left and left-to-right characters"),
    ],
)
def test_saslprep_rejects(text: str, message: str) -> None:
    with pytest.raises(StunEncodeError) as info:
        stun.saslprep(text)
    assert str(info.value) == message


# -- cheap peeks ---------------------------------------------------------------------------


def test_is_stun_classification() -> None:
    wire = binding(stun.Software("x")).encode()
    assert stun.is_stun(wire)
    assert not stun.is_stun(wire[:-1])
    assert not stun.is_stun(wire + b"\0\0\0\0")
    assert not stun.is_stun(b"\x16\xfe\xfd" + bytes(30))  # DTLS
    assert not stun.is_stun(b"\x80\x60" + bytes(30))  # RTP
    assert not stun.is_stun(stun.encode_channel_data(0x4000, bytes(16)))
    assert not stun.is_stun(wire[:4] + bytes(4) + wire[8:])


def test_peek_attribute() -> None:
    wire = binding(stun.Software("sw"), stun.Username("ufrag:peer")).encode(
        integrity_key=KEY, fingerprint=True
    )
    assert stun.peek_attribute(wire, 0x0006) == b"ufrag:peer"
    assert stun.peek_attribute(wire, 0x0024) is None
    assert stun.peek_attribute(wire, 0x8028) is None  # stops at MESSAGE-INTEGRITY
    with pytest.raises(StunDecodeError, match="truncated"):
        stun.peek_attribute(wire[:-8], 0x0006)
    with pytest.raises(StunDecodeError, match="at offset 20 truncated: length 65535"):
        stun.peek_attribute(wire[:20] + b"\x80\x22\xff\xff" + wire[24:], 0x0006)
