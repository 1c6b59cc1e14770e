"""Hypothesis strategies for every STUN attribute and for whole messages and streams."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from hypothesis import strategies as st

from turn import stun
from turn.stun import (
    ATTRIBUTE_CLASSES,
    AddressAttribute,
    Attribute,
    ChannelData,
    MessageClass,
    StunMessage,
    TextAttribute,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 2**64 - 1)
transaction_ids = st.binary(min_size=12, max_size=12)
addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(IPv4Address), st.integers(0, 2**128 - 1).map(IPv6Address)
)
reasons = st.text(max_size=40)
error_codes = st.integers(300, 699)


def _text(cls: type[TextAttribute]) -> st.SearchStrategy[Attribute]:
    max_chars = cls.MAX_CHARS if cls.MAX_CHARS is not None else cls.MAX_BYTES // 4
    return st.text(max_size=max_chars).filter(lambda s: len(s.encode()) <= cls.MAX_BYTES).map(cls)


def _address(cls: type[AddressAttribute]) -> st.SearchStrategy[Attribute]:
    return st.builds(cls, addresses, u16)


_password_algorithm = st.builds(stun.PasswordAlgorithm, u16, st.binary(max_size=11))

_SPECIAL: dict[type[Attribute], st.SearchStrategy[Attribute]] = {
    stun.ErrorCode: st.builds(stun.ErrorCode, error_codes, reasons),
    stun.AddressErrorCode: st.builds(stun.AddressErrorCode, u8, error_codes, reasons),
    stun.UnknownAttributes: st.lists(u16, max_size=8).map(tuple).map(stun.UnknownAttributes),
    stun.Lifetime: u32.map(stun.Lifetime),
    stun.Priority: u32.map(stun.Priority),
    stun.ConnectionId: u32.map(stun.ConnectionId),
    stun.ChannelNumber: u16.map(stun.ChannelNumber),
    stun.RequestedTransport: u8.map(stun.RequestedTransport),
    stun.RequestedAddressFamily: u8.map(stun.RequestedAddressFamily),
    stun.AdditionalAddressFamily: u8.map(stun.AdditionalAddressFamily),
    stun.EvenPort: st.booleans().map(stun.EvenPort),
    stun.IceControlled: u64.map(stun.IceControlled),
    stun.IceControlling: u64.map(stun.IceControlling),
    stun.Icmp: st.builds(stun.Icmp, u8, u8, u32),
    stun.Data: st.binary(max_size=200).map(stun.Data),
    stun.ReservationToken: st.binary(min_size=8, max_size=8).map(stun.ReservationToken),
    stun.UserHash: st.binary(min_size=32, max_size=32).map(stun.UserHash),
    stun.DontFragment: st.just(stun.DontFragment()),
    stun.UseCandidate: st.just(stun.UseCandidate()),
    stun.PasswordAlgorithm: _password_algorithm,
    stun.PasswordAlgorithms: st.lists(_password_algorithm, max_size=4)
    .map(tuple)
    .map(stun.PasswordAlgorithms),
}


def strategy_for(cls: type[Attribute]) -> st.SearchStrategy[Attribute]:
    """The strategy generating valid instances of one attribute class."""
    if cls in _SPECIAL:
        return _SPECIAL[cls]
    if issubclass(cls, AddressAttribute):
        return _address(cls)
    if issubclass(cls, TextAttribute):
        return _text(cls)
    raise KeyError(f"no strategy for {cls.__name__}")


raw_attributes = st.builds(
    stun.RawAttribute,
    u16.filter(lambda t: t not in ATTRIBUTE_CLASSES and t not in (0x0008, 0x001C, 0x8028)),
    st.binary(max_size=40),
)

any_attribute: st.SearchStrategy[Attribute] = st.one_of(
    *[strategy_for(cls) for cls in ATTRIBUTE_CLASSES.values()], raw_attributes
)

messages = st.builds(
    StunMessage,
    st.integers(0, 0xFFF),
    st.sampled_from(list(MessageClass)),
    transaction_ids,
    st.lists(any_attribute, max_size=6).map(tuple),
)

channel_data = st.builds(ChannelData, st.integers(0x4000, 0x4FFF), st.binary(max_size=100))
