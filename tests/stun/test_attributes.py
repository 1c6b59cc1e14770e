"""Per-attribute round trips, decode errors with exact messages, and encode-side validation."""

# ruff: noqa: E501  (tables of exact error messages read best one per line)

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.stun.strategies import raw_attributes, strategy_for, transaction_ids
from turn import stun
from turn.errors import LocalProtocolError, RemoteProtocolError
from turn.stun import (
    ATTRIBUTE_CLASSES,
    Attribute,
    StunDecodeError,
    StunEncodeError,
    decode_attribute,
    encode_attribute,
)

TID = bytes(range(12))
ALL_CLASSES = sorted(ATTRIBUTE_CLASSES.values(), key=lambda c: c.TYPE)


def roundtrip(attr: Attribute, tid: bytes = TID) -> Attribute:
    wire = encode_attribute(attr, tid)
    attr_type, length = struct.unpack_from(">HH", wire)
    assert attr_type == attr.attr_type
    assert len(wire) == 4 + length + (-length % 4)
    assert wire[4 + length :] == bytes(-length % 4)
    return decode_attribute(attr_type, wire[4 : 4 + length], tid)


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@given(data=st.data(), tid=transaction_ids)
def test_every_attribute_roundtrips(cls: type[Attribute], data: st.DataObject, tid: bytes) -> None:
    attr = data.draw(strategy_for(cls))
    assert roundtrip(attr, tid) == attr


@given(attr=raw_attributes)
def test_unknown_attributes_are_kept_raw_and_reencode_intact(attr: stun.RawAttribute) -> None:
    assert roundtrip(attr) == attr


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda c: c.__name__)
@given(value=st.binary(max_size=80), tid=transaction_ids)
def test_arbitrary_values_raise_only_decode_errors(
    cls: type[Attribute], value: bytes, tid: bytes
) -> None:
    try:
        attr = cls.decode_value(value, tid)
    except StunDecodeError:
        return
    # Whatever decodes must encode again and decode to the same value.
    assert roundtrip(attr, tid) == attr


def test_required_attribute_set_is_complete() -> None:
    names = {t.name for t in stun.AttrType} - {
        "MESSAGE_INTEGRITY",
        "MESSAGE_INTEGRITY_SHA256",
        "FINGERPRINT",
    }
    assert {stun.AttrType(t).name for t in ATTRIBUTE_CLASSES} == names


def test_comprehension_ranges() -> None:
    assert stun.is_comprehension_required(0x7FFF)
    assert not stun.is_comprehension_required(0x8000)


@pytest.mark.parametrize(
    ("attr", "wire"),
    [
        (stun.XorMappedAddress(IPv4Address("192.0.2.1"), 32853), "0001a147e112a643"),
        (stun.MappedAddress(IPv4Address("192.0.2.1"), 32853), "00018055c0000201"),
        (stun.ErrorCode(438, "Stale Nonce"), "000004265374616c65204e6f6e6365"),
        (stun.UnknownAttributes((0x0030, 0x7F01)), "00307f01"),
        (stun.Lifetime(600), "00000258"),
        (stun.ChannelNumber(0x4001), "40010000"),
        (stun.RequestedTransport(17), "11000000"),
        (stun.RequestedAddressFamily(2), "02000000"),
        (stun.EvenPort(True), "80"),
        (stun.EvenPort(False), "00"),
        (stun.IceControlling(1), "0000000000000001"),
        (stun.DontFragment(), ""),
        (stun.UseCandidate(), ""),
        (stun.Icmp(3, 1, 7), "0000030100000007"),
        (stun.AddressErrorCode(2, 440), "02000428"),
        (stun.PasswordAlgorithm(1, b"ab"), "0001000261620000"),
    ],
)
def test_known_wire_values(attr: Attribute, wire: str) -> None:
    assert attr.encode_value(bytes.fromhex("b7e7a701bc34d686fa87dfae")) == bytes.fromhex(wire)


def test_error_code_standard_reason() -> None:
    assert stun.ErrorCode.standard(420) == stun.ErrorCode(420, "Unknown Attribute")
    assert stun.ErrorCode.standard(499) == stun.ErrorCode(499, "")


def test_xor_address_ipv6_uses_transaction_id() -> None:
    attr = stun.XorPeerAddress(IPv6Address("2001:db8::1"), 3478)
    assert roundtrip(attr, bytes(12)) == attr
    wire = encode_attribute(attr, bytes(12))
    assert decode_attribute(0x0012, wire[4:], b"\xff" * 12) != attr


@pytest.mark.parametrize(
    ("cls", "value", "message"),
    [
        (stun.XorMappedAddress, b"\x00\x01", "STUN XOR-MAPPED-ADDRESS truncated: 2 bytes, at least 8 needed"),
        (stun.XorMappedAddress, b"\x00\x03\x00\x01abcd", "STUN XOR-MAPPED-ADDRESS has unknown address family 0x03"),
        (stun.MappedAddress, b"\x00\x01\x00\x01abc", "STUN MAPPED-ADDRESS with IPv4 family has length 7, expected 8"),
        (stun.XorRelayedAddress, b"\x00\x02\x00\x01" + bytes(8), "STUN XOR-RELAYED-ADDRESS with IPv6 family has length 12, expected 20"),
        (stun.Lifetime, b"\x00\x00\x02", "STUN LIFETIME has length 3, expected 4"),
        (stun.Priority, b"", "STUN PRIORITY has length 0, expected 4"),
        (stun.IceControlling, bytes(4), "STUN ICE-CONTROLLING has length 4, expected 8"),
        (stun.EvenPort, b"\x80\x00", "STUN EVEN-PORT has length 2, expected 1"),
        (stun.UseCandidate, b"\x00", "STUN USE-CANDIDATE has length 1, expected 0"),
        (stun.DontFragment, b"\x00\x00\x00\x00", "STUN DONT-FRAGMENT has length 4, expected 0"),
        (stun.ReservationToken, bytes(7), "STUN RESERVATION-TOKEN has length 7, expected 8"),
        (stun.ChannelNumber, bytes(2), "STUN CHANNEL-NUMBER has length 2, expected 4"),
        (stun.ErrorCode, b"\x00\x00\x04", "STUN ERROR-CODE truncated: 3 bytes, at least 4 needed"),
        (stun.ErrorCode, b"\x00\x00\x02\x00", "STUN ERROR-CODE class 2 is not in 3-6"),
        (stun.ErrorCode, b"\x00\x00\x04\x64", "STUN ERROR-CODE number 100 is not in 0-99"),
        (stun.ErrorCode, b"\x00\x00\x04\x00\xff", "STUN ERROR-CODE is not valid UTF-8 (byte 0: invalid start byte)"),
        (stun.Username, b"ab\xc3", "STUN USERNAME is not valid UTF-8 (byte 2: unexpected end of data)"),
        (stun.UnknownAttributes, b"\x00\x01\x00", "STUN UNKNOWN-ATTRIBUTES has odd length 3, expected a multiple of 2"),
        (stun.PasswordAlgorithm, b"\x00\x01\x00\x05abc", "STUN PASSWORD-ALGORITHM truncated at byte 0: parameters need 8 bytes with padding, 3 present"),
        (stun.PasswordAlgorithms, b"\x00\x01\x00\x00\x00", "STUN PASSWORD-ALGORITHMS truncated at byte 4: 1 bytes left, 4 needed for an algorithm"),
    ],
)  # fmt: skip
def test_decode_errors_are_exact(cls: type[Attribute], value: bytes, message: str) -> None:
    with pytest.raises(StunDecodeError) as info:
        cls.decode_value(value, TID)
    assert str(info.value) == message
    assert isinstance(info.value, RemoteProtocolError)


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        (stun.Lifetime(-1), "STUN LIFETIME: seconds -1 is not an integer in 0-4294967295"),
        (stun.Lifetime(True), "STUN LIFETIME: seconds True is not an integer in 0-4294967295"),
        (stun.XorPeerAddress(IPv4Address("1.2.3.4"), 70000), "STUN XOR-PEER-ADDRESS: port 70000 is not an integer in 0-65535"),
        (stun.XorPeerAddress("1.2.3.4", 1), "STUN XOR-PEER-ADDRESS: address must be IPv4Address or IPv6Address, got str"),  # type: ignore[arg-type]
        (stun.ErrorCode(200), "STUN ERROR-CODE: code 200 is not in 300-699"),
        (stun.ErrorCode(700), "STUN ERROR-CODE: code 700 is not in 300-699"),
        (stun.Software("x" * 128), "STUN SOFTWARE: 128 characters, at most 127 allowed"),
        (stun.Username("\u00e9" * 255), "STUN USERNAME: 510 bytes of UTF-8, at most 508 allowed"),
        (stun.Realm("\ud800"), "STUN REALM: not encodable as UTF-8"),
        (stun.ReservationToken(b"123"), "STUN RESERVATION-TOKEN: token must be 8 bytes, got 3"),
        (stun.Data("text"), "STUN DATA: data must be bytes"),  # type: ignore[arg-type]
        (stun.RawAttribute(0x0008, b""), "STUN MESSAGE-INTEGRITY is computed by the encoder; pass a key or fingerprint=True instead of the attribute"),
        (stun.RawAttribute(0x8028, b""), "STUN FINGERPRINT is computed by the encoder; pass a key or fingerprint=True instead of the attribute"),
        (stun.RawAttribute(0x10000, b""), "STUN attribute type 65536 is not in 0-65535"),
        (stun.Data(bytes(65536)), "STUN DATA value is 65536 bytes, at most 65535 fit"),
        (stun.UnknownAttributes((1, -2)), "STUN UNKNOWN-ATTRIBUTES: type -2 is not an integer in 0-65535"),
    ],
)  # fmt: skip
def test_encode_errors_are_local(attr: Attribute, message: str) -> None:
    with pytest.raises(StunEncodeError) as info:
        encode_attribute(attr, TID)
    assert str(info.value) == message
    assert isinstance(info.value, LocalProtocolError)


def test_encode_attribute_rejects_non_attributes() -> None:
    with pytest.raises(StunEncodeError, match="not a STUN attribute"):
        encode_attribute(b"xx", TID)  # type: ignore[arg-type]
