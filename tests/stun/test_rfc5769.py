"""RFC 5769 test vectors, byte for byte as published (padding in 2.1-2.3 is 0x20 on purpose)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from turn.stun import (
    IceControlled,
    MessageClass,
    Method,
    Nonce,
    Priority,
    Realm,
    Software,
    StunIntegrityError,
    StunMessage,
    Username,
    XorMappedAddress,
    long_term_key,
    parse_message,
    saslprep,
    short_term_key,
)


def hexbytes(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


PASSWORD = "VOkJxbRl1RmTxUk/WvJxBt"
TID = hexbytes("b7 e7 a7 01 bc 34 d6 86 fa 87 df ae")

SAMPLE_REQUEST = hexbytes("""
    00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
    00 24 00 04 6e 00 01 ff
    80 29 00 08 93 2f f9 b1 51 26 3b 36
    00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
    00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
    80 28 00 04 e5 7a 3b cf
""")

IPV4_RESPONSE = hexbytes("""
    01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 08 00 01 a1 47 e1 12 a6 43
    00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
    80 28 00 04 c0 7d 4c 96
""")

IPV6_RESPONSE = hexbytes("""
    01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
    80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
    00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
    00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
    80 28 00 04 c8 fb 0b 4c
""")

LONG_TERM_REQUEST = hexbytes("""
    00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
    00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
    00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
    00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
    00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66
""")


def test_sample_request() -> None:
    msg = parse_message(SAMPLE_REQUEST)
    assert (msg.method, msg.cls, msg.transaction_id) == (Method.BINDING, MessageClass.REQUEST, TID)
    assert msg.attributes == (
        Software("STUN test client"),
        Priority(0x6E0001FF),
        IceControlled(0x932FF9B151263B36),
        Username("evtj:h6vY"),
    )
    assert msg.has_fingerprint and msg.has_integrity
    msg.verify_integrity(short_term_key(PASSWORD))
    assert not msg.integrity_ok(short_term_key(PASSWORD + "x"))
    with pytest.raises(StunIntegrityError, match="MESSAGE-INTEGRITY mismatch"):
        msg.verify_integrity(b"wrong")


def test_sample_request_reencodes_to_an_equal_verified_message() -> None:
    msg = parse_message(SAMPLE_REQUEST)
    key = short_term_key(PASSWORD)
    again = parse_message(msg.encode(integrity_key=key, fingerprint=True))
    assert again == msg
    again.verify_integrity(key)
    # Padding is the only difference from the vector: our encoder pads with zeros.
    assert len(again.raw) == len(SAMPLE_REQUEST)


@pytest.mark.parametrize(
    ("vector", "address"),
    [
        (IPV4_RESPONSE, IPv4Address("192.0.2.1")),
        (IPV6_RESPONSE, IPv6Address("2001:db8:1234:5678:11:2233:4455:6677")),
    ],
)
def test_sample_responses(vector: bytes, address: IPv4Address | IPv6Address) -> None:
    msg = parse_message(vector)
    assert (msg.method, msg.cls, msg.transaction_id) == (Method.BINDING, MessageClass.SUCCESS, TID)
    assert msg.attributes == (Software("test vector"), XorMappedAddress(address, 32853))
    msg.verify_integrity(short_term_key(PASSWORD))
    # The XOR-MAPPED-ADDRESS value re-encodes to the vector's bytes exactly.
    attr_bytes = vector[20 + 16 : 20 + 16 + (12 if address.version == 4 else 24)]
    rebuilt = StunMessage(msg.method, msg.cls, TID, (XorMappedAddress(address, 32853),)).encode()
    assert rebuilt[20:] == attr_bytes


def test_long_term_request_with_saslprep() -> None:
    msg = parse_message(LONG_TERM_REQUEST)
    assert msg.attributes == (
        Username("\u30de\u30c8\u30ea\u30c3\u30af\u30b9"),
        Nonce("f//499k954d6OL34oL9FSTvy64sA"),
        Realm("example.org"),
    )
    assert not msg.has_fingerprint
    # The password "TheM\u00aatr\u2168" becomes "TheMatrIX" after SASLprep (RFC 5769 §2.4).
    password = saslprep("TheM\u00aatr\u2168")
    assert password == "TheMatrIX"
    key = long_term_key("\u30de\u30c8\u30ea\u30c3\u30af\u30b9", "example.org", password)
    assert len(key) == 16
    msg.verify_integrity(key)
    assert not msg.integrity_ok(
        long_term_key("\u30de\u30c8\u30ea\u30c3\u30af\u30b9", "example.org", "TheM\u00aatr\u2168")
    )
    # No odd padding here: our encoder reproduces the vector byte for byte.
    assert msg.encode(integrity_key=key) == LONG_TERM_REQUEST
