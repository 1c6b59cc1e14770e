"""STUN messages (RFC 8489 §5-6, §14): parse, build, integrity and fingerprint.

A :class:`StunMessage` compares equal on method, class, transaction id and ordinary attributes.
MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are not attributes here: the encoder
computes them from keys, and the parser remembers where they sat in the received bytes so
:meth:`StunMessage.verify_integrity` can check them over exactly what was sent. Attributes that
follow MESSAGE-INTEGRITY (other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT) are ignored as
RFC 8489 §14.5 requires, and so is anything after FINGERPRINT.
"""

from __future__ import annotations

import hmac
import struct
import zlib
from dataclasses import dataclass, field
from typing import Final, TypeVar

from turn.stun.attributes import DECODERS, encode_attribute
from turn.stun.attributes.base import Attribute, RawAttribute
from turn.stun.attributes.error_code import ErrorCode
from turn.stun.constants import (
    FINGERPRINT_XOR,
    HEADER_SIZE,
    MAGIC_COOKIE,
    MAX_BODY_LENGTH,
    AttrType,
    MessageClass,
    Method,
    attr_name,
    decode_message_type,
    encode_message_type,
)
from turn.stun.errors import StunDecodeError, StunEncodeError, StunIntegrityError
from turn.stun.header import Buffer
from turn.stun.integrity import digests_equal, fingerprint, hmac_sha1, hmac_sha256

A = TypeVar("A", bound=Attribute)

_HEADER: Final = struct.Struct(">HHI")
_TL: Final = struct.Struct(">HH")
_U32: Final = struct.Struct(">I")
_MI: Final = AttrType.MESSAGE_INTEGRITY.value
_MI256: Final = AttrType.MESSAGE_INTEGRITY_SHA256.value
_FP: Final = AttrType.FINGERPRINT.value
_METHODS: Final[dict[int, int]] = {m.value: m for m in Method}
_CLASSES: Final = tuple(MessageClass)
_FP_TL: Final = _TL.pack(_FP, 4)
_MI_TL: Final = _TL.pack(_MI, 20)


@dataclass(frozen=True, slots=True)
class StunMessage:
    """A STUN message. Build one and :meth:`encode` it, or get one from :func:`parse_message`."""

    method: int
    cls: MessageClass
    transaction_id: bytes
    attributes: tuple[Attribute, ...] = ()
    #: The bytes this message was parsed from (empty for a message built locally).
    raw: bytes = field(default=b"", compare=False, repr=False)
    #: Offset of MESSAGE-INTEGRITY in :attr:`raw`, or -1.
    integrity_offset: int = field(default=-1, compare=False, repr=False)
    #: Offset of MESSAGE-INTEGRITY-SHA256 in :attr:`raw`, or -1.
    integrity_sha256_offset: int = field(default=-1, compare=False, repr=False)
    #: Offset of FINGERPRINT in :attr:`raw`, or -1.
    fingerprint_offset: int = field(default=-1, compare=False, repr=False)

    # -- attribute access -------------------------------------------------------------------

    def get(self, attr_cls: type[A]) -> A | None:
        """The first attribute of this class (the RFC says later duplicates carry no meaning)."""
        for attr in self.attributes:
            if type(attr) is attr_cls:
                return attr
        return None

    def get_all(self, attr_cls: type[A]) -> list[A]:
        """Every attribute of this class, in message order."""
        return [a for a in self.attributes if type(a) is attr_cls]

    @property
    def unknown_required(self) -> tuple[int, ...]:
        """Unknown comprehension-required types (below 0x8000): answer a request with 420."""
        return tuple(
            dict.fromkeys(
                a.type for a in self.attributes if type(a) is RawAttribute and a.type < 0x8000
            )
        )

    @property
    def has_integrity(self) -> bool:
        """Whether the received message carried MESSAGE-INTEGRITY."""
        return self.integrity_offset >= 0

    @property
    def has_integrity_sha256(self) -> bool:
        """Whether the received message carried MESSAGE-INTEGRITY-SHA256."""
        return self.integrity_sha256_offset >= 0

    @property
    def has_fingerprint(self) -> bool:
        """Whether the received message carried FINGERPRINT (checked by the parser)."""
        return self.fingerprint_offset >= 0

    # -- integrity --------------------------------------------------------------------------

    def integrity_ok(self, key: bytes) -> bool:
        """True if MESSAGE-INTEGRITY is present and matches ``key`` (constant-time compare)."""
        off = self.integrity_offset
        if off < 0:
            return False
        return digests_equal(hmac_sha1(key, self.raw, off), self.raw[off + 4 : off + 24])

    def verify_integrity(self, key: bytes) -> None:
        """Raise :class:`StunIntegrityError` unless MESSAGE-INTEGRITY matches ``key``."""
        if self.integrity_offset < 0:
            raise StunIntegrityError("STUN message has no MESSAGE-INTEGRITY")
        if not self.integrity_ok(key):
            raise StunIntegrityError(
                "STUN MESSAGE-INTEGRITY mismatch: wrong key or altered message"
            )

    def integrity_sha256_ok(self, key: bytes) -> bool:
        """True if MESSAGE-INTEGRITY-SHA256 is present and matches ``key``."""
        off = self.integrity_sha256_offset
        if off < 0:
            return False
        length = _TL.unpack_from(self.raw, off)[1]
        expected = self.raw[off + 4 : off + 4 + length]
        return digests_equal(hmac_sha256(key, self.raw, off, length), expected)

    def verify_integrity_sha256(self, key: bytes) -> None:
        """Raise :class:`StunIntegrityError` unless MESSAGE-INTEGRITY-SHA256 matches ``key``."""
        if self.integrity_sha256_offset < 0:
            raise StunIntegrityError("STUN message has no MESSAGE-INTEGRITY-SHA256")
        if not self.integrity_sha256_ok(key):
            raise StunIntegrityError(
                "STUN MESSAGE-INTEGRITY-SHA256 mismatch: wrong key or altered message"
            )

    # -- building ---------------------------------------------------------------------------

    def response(self, *attributes: Attribute) -> StunMessage:
        """A success response to this request: same method and transaction id."""
        return StunMessage(self.method, MessageClass.SUCCESS, self.transaction_id, attributes)

    def error_response(
        self, code: int, *attributes: Attribute, reason: str | None = None
    ) -> StunMessage:
        """An error response with ERROR-CODE first (standard reason phrase unless given)."""
        err = ErrorCode.standard(code) if reason is None else ErrorCode(code, reason)
        return StunMessage(self.method, MessageClass.ERROR, self.transaction_id, (err, *attributes))

    def encode(
        self,
        *,
        integrity_key: bytes | None = None,
        integrity_sha256_key: bytes | None = None,
        integrity_sha256_length: int = 32,
        fingerprint: bool = False,
    ) -> bytes:
        """Wire bytes; see :func:`encode_message`."""
        return encode_message(
            self,
            integrity_key=integrity_key,
            integrity_sha256_key=integrity_sha256_key,
            integrity_sha256_length=integrity_sha256_length,
            fingerprint=fingerprint,
        )


def _header(msg_type: int, length: int, transaction_id: bytes) -> bytes:
    if length > MAX_BODY_LENGTH:
        raise StunEncodeError(
            f"STUN message too long: {length} bytes of attributes, at most {MAX_BODY_LENGTH}"
        )
    return _HEADER.pack(msg_type, length, MAGIC_COOKIE) + transaction_id


def _check_key(name: str, key: object) -> bytes:
    if not isinstance(key, bytes | bytearray | memoryview):
        raise StunEncodeError(f"STUN {name} key must be bytes, got {type(key).__name__}")
    return bytes(key)


def encode_message(
    message: StunMessage,
    *,
    integrity_key: bytes | None = None,
    integrity_sha256_key: bytes | None = None,
    integrity_sha256_length: int = 32,
    fingerprint: bool = False,
) -> bytes:
    """Encode ``message``, appending MESSAGE-INTEGRITY (HMAC-SHA1 with ``integrity_key``),
    MESSAGE-INTEGRITY-SHA256 (truncated to ``integrity_sha256_length``, 16-32 and a multiple
    of 4) and FINGERPRINT, in that order, as RFC 8489 §14.5-14.7 require.

    Raises :class:`StunEncodeError` for any value the wire format cannot carry.
    """
    method, cls, tid = message.method, message.cls, message.transaction_id
    if not isinstance(method, int) or not 0 <= method <= 0xFFF:
        raise StunEncodeError(f"STUN method {method!r} is not in 0-0xfff")
    if not isinstance(cls, int) or not 0 <= cls <= 3:
        raise StunEncodeError(f"STUN class {cls!r} is not in 0-3")
    if not isinstance(tid, bytes) or len(tid) != 12:
        raise StunEncodeError(f"STUN transaction id must be 12 bytes, got {tid!r}")
    msg_type = encode_message_type(method, cls)
    body = b"".join([encode_attribute(a, tid) for a in message.attributes])
    if integrity_key is not None:
        key = _check_key("MESSAGE-INTEGRITY", integrity_key)
        covered = _header(msg_type, len(body) + 24, tid) + body
        body += _MI_TL + hmac.digest(key, covered, "sha1")
    if integrity_sha256_key is not None:
        key = _check_key("MESSAGE-INTEGRITY-SHA256", integrity_sha256_key)
        n = integrity_sha256_length
        if not isinstance(n, int) or not 16 <= n <= 32 or n % 4:
            raise StunEncodeError(
                f"MESSAGE-INTEGRITY-SHA256 length {n!r} must be 16-32 and a multiple of 4"
            )
        covered = _header(msg_type, len(body) + 4 + n, tid) + body
        body += _TL.pack(_MI256, n) + hmac.digest(key, covered, "sha256")[:n]
    if fingerprint:
        covered = _header(msg_type, len(body) + 8, tid) + body
        body += _FP_TL + _U32.pack(zlib.crc32(covered) ^ FINGERPRINT_XOR)
    return _header(msg_type, len(body), tid) + body


def parse_message(data: Buffer, *, check_fingerprint: bool = True) -> StunMessage:
    """Parse one whole STUN message (a UDP datagram, or a frame from the stream reassembler).

    Validates header, lengths and every known attribute, and (unless ``check_fingerprint`` is
    false) FINGERPRINT. Integrity is left to :meth:`StunMessage.verify_integrity` because the
    key depends on USERNAME/REALM found here. Raises :class:`StunDecodeError` and nothing else.
    """
    raw = data if type(data) is bytes else bytes(data)
    n = len(raw)
    if n < HEADER_SIZE:
        raise StunDecodeError(f"STUN message truncated: {n} bytes, the header alone needs 20")
    msg_type, length, cookie = _HEADER.unpack_from(raw)
    if msg_type & 0xC000:
        raise StunDecodeError(
            f"not a STUN message: first two bits are 0b{msg_type >> 14:02b}, expected 0b00"
        )
    if cookie != MAGIC_COOKIE:
        raise StunDecodeError(f"STUN magic cookie is 0x{cookie:08x}, expected 0x2112a442")
    if length != n - HEADER_SIZE:
        what = "truncated" if length > n - HEADER_SIZE else "has trailing bytes"
        raise StunDecodeError(
            f"STUN message {what}: header says {length} bytes of attributes, "
            f"{n - HEADER_SIZE} present"
        )
    if length & 3:
        raise StunDecodeError(
            f"STUN message length {length} is not a multiple of 4 (bad attribute padding)"
        )
    tid = raw[8:HEADER_SIZE]
    attrs: list[Attribute] = []
    mi = mi256 = fp = -1
    decoders = DECODERS
    unpack_tl = _TL.unpack_from
    pos = HEADER_SIZE
    while pos < n:
        atype, alen = unpack_tl(raw, pos)
        start = pos + 4
        end = start + alen
        if end > n:
            raise StunDecodeError(
                f"STUN attribute {attr_name(atype)} at offset {pos} truncated: length {alen}, "
                f"{n - start} bytes left in the message"
            )
        if atype == _MI:
            if mi < 0 and mi256 < 0:
                if alen != 20:
                    raise StunDecodeError(f"STUN MESSAGE-INTEGRITY has length {alen}, expected 20")
                mi = pos
        elif atype == _MI256:
            if mi256 < 0:
                if alen < 16 or alen > 32 or alen & 3:
                    raise StunDecodeError(
                        f"STUN MESSAGE-INTEGRITY-SHA256 has length {alen}, "
                        "expected 16-32 and a multiple of 4"
                    )
                mi256 = pos
        elif atype == _FP:
            if alen != 4:
                raise StunDecodeError(f"STUN FINGERPRINT has length {alen}, expected 4")
            fp = pos
            break
        elif mi < 0 and mi256 < 0:
            decoder = decoders.get(atype)
            value = raw[start:end]
            attrs.append(RawAttribute(atype, value) if decoder is None else decoder(value, tid))
        pos = end + (-alen & 3)
    if fp >= 0 and check_fingerprint:
        carried = _U32.unpack_from(raw, fp + 4)[0]
        computed = fingerprint(raw, fp)
        if carried != computed:
            raise StunDecodeError(
                f"STUN FINGERPRINT mismatch: message carries 0x{carried:08x}, "
                f"computed 0x{computed:08x}"
            )
    method, cls = decode_message_type(msg_type)
    return StunMessage(
        _METHODS.get(method, method),
        _CLASSES[cls],
        tid,
        tuple(attrs),
        raw,
        mi,
        mi256,
        fp,
    )


__all__ = ["StunMessage", "encode_message", "parse_message"]
