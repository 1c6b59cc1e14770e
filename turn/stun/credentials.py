"""Keys for MESSAGE-INTEGRITY: short-term (ICE) and long-term (TURN) credentials.

RFC 8489 §9: a short-term key is the password itself; a long-term key is
``H(username ":" realm ":" password)`` with H = MD5 (16-byte key, used with MESSAGE-INTEGRITY) or
SHA-256 (32-byte key, chosen through PASSWORD-ALGORITHM). Inputs are used as given: callers who
need RFC 5389 compatibility for non-ASCII credentials run the password through :func:`saslprep`
first, exactly as the RFC 5769 §2.4 vector expects.
"""

from __future__ import annotations

import hashlib
import stringprep
import unicodedata
from collections.abc import Callable
from typing import Final

from turn.stun.attributes.password import ALGORITHM_MD5, ALGORITHM_SHA256
from turn.stun.errors import StunEncodeError


def short_term_key(password: str) -> bytes:
    """ICE short-term key: the UTF-8 password (RFC 8489 §9.1.1)."""
    return password.encode("utf-8")


def long_term_key(
    username: str, realm: str, password: str, algorithm: int = ALGORITHM_MD5
) -> bytes:
    """Long-term key ``H(username:realm:password)`` (RFC 8489 §9.2.2).

    ``algorithm`` is :data:`ALGORITHM_MD5` (the default, what coturn and every browser use) or
    :data:`ALGORITHM_SHA256`.
    """
    data = f"{username}:{realm}:{password}".encode()
    if algorithm == ALGORITHM_MD5:
        return hashlib.md5(data, usedforsecurity=False).digest()
    if algorithm == ALGORITHM_SHA256:
        return hashlib.sha256(data).digest()
    raise StunEncodeError(f"unknown STUN password algorithm 0x{algorithm:04x}")


def userhash(username: str, realm: str) -> bytes:
    """USERHASH value: SHA-256 of ``username:realm`` (RFC 8489 §14.4)."""
    return hashlib.sha256(f"{username}:{realm}".encode()).digest()


_PROHIBITED: Final[tuple[Callable[[str], bool], ...]] = (
    stringprep.in_table_c12,
    stringprep.in_table_c21,
    stringprep.in_table_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(text: str, *, allow_unassigned: bool = False) -> str:
    """SASLprep (RFC 4013), the profile RFC 5389 applied to passwords.

    Maps non-ASCII spaces to space and drops "commonly mapped to nothing" characters, applies
    NFKC, then refuses prohibited, unassigned (unless allowed) and badly mixed bidi characters.
    Raises :class:`StunEncodeError`: the input is our own credential, not the peer's.
    """
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c)
    )
    result = unicodedata.normalize("NFKC", mapped)
    for c in result:
        if any(check(c) for check in _PROHIBITED):
            raise StunEncodeError(f"SASLprep: prohibited character U+{ord(c):04X}")
        if not allow_unassigned and stringprep.in_table_a1(c):
            raise StunEncodeError(f"SASLprep: unassigned character U+{ord(c):04X}")
    if any(stringprep.in_table_d1(c) for c in result):
        if any(stringprep.in_table_d2(c) for c in result):
            raise StunEncodeError("SASLprep: mixes right-to-left and left-to-right characters")
        if not (stringprep.in_table_d1(result[0]) and stringprep.in_table_d1(result[-1])):
            raise StunEncodeError("SASLprep: right-to-left text must start and end with RandALCat")
    return result
