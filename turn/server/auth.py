"""Long-term credentials for TURN: stateless nonces and region-bound TURN REST usernames.

Nonces (RFC 8489 §9.2) are stateless so a flood of first requests costs no memory: a nonce is
``base64url(minute16 || HMAC-SHA256(server_key, minute32 || client_ip)[:4])``, 8 characters.
It is that short on purpose: the 401 challenge must fit in the request that triggered it (no
amplification), and coturn's uclient sends a 52-byte first Allocate. The MAC only proves that
*we* issued the nonce to *this* address within the lifetime; it guards nothing else (the
password-derived key does), so 32 bits against an online, rate-limited guesser are plenty.
A nonce that fails the MAC was never issued and is answered like a stale one (438 with a fresh
nonce), as RFC 8489 allows, so a client with a nonce from before a restart recovers at once.

TURN REST credentials (draft-uberti-behave-turn-rest, coturn's ``use-auth-secret``): the
password is ``base64(HMAC-SHA1(secret, username))`` with the secret's text as the HMAC key,
exactly what coturn computes, so one secret serves both. Regio binds the username to a region,
``<expiry>:<region>:<participant>``; a node accepts only its own region. During a rotation
several secrets are valid and each is tried (coturn does the same with several secrets).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from turn.stun import long_term_key

_MINUTE: Final = struct.Struct(">H")
_NONCE_RAW: Final = 6


class NonceIssuer:
    """Issues and checks stateless nonces bound to a client IP and a minute timestamp."""

    __slots__ = ("_key", "lifetime")

    def __init__(self, key: bytes, lifetime: float = 600.0) -> None:
        self._key = key
        self.lifetime = lifetime

    def _mac(self, minute: int, client_ip: str) -> bytes:
        msg = minute.to_bytes(4, "big") + client_ip.encode()
        return hmac.digest(self._key, msg, "sha256")[:4]

    def issue(self, client_ip: str, wall_now: float) -> str:
        """A fresh nonce for ``client_ip``."""
        minute = int(wall_now // 60)
        raw = _MINUTE.pack(minute & 0xFFFF) + self._mac(minute, client_ip)
        return base64.urlsafe_b64encode(raw).decode()

    def check(self, nonce: str, client_ip: str, wall_now: float) -> bool:
        """True if we issued ``nonce`` to ``client_ip`` and it is younger than the lifetime."""
        if len(nonce) != 8:
            return False
        try:
            raw = base64.urlsafe_b64decode(nonce)
        except (binascii.Error, ValueError):
            return False
        if len(raw) != _NONCE_RAW:
            return False
        now_minute = int(wall_now // 60)
        low = _MINUTE.unpack_from(raw)[0]
        # The most recent minute not after now whose low 16 bits match.
        minute = now_minute - ((now_minute - low) & 0xFFFF)
        if not hmac.compare_digest(raw[2:], self._mac(minute, client_ip)):
            return False
        return bool((now_minute - minute) * 60 <= self.lifetime)


def rest_password(secret: str, username: str) -> str:
    """The TURN REST password of ``username`` under ``secret``, exactly as coturn computes it."""
    digest = hmac.digest(secret.encode(), username.encode(), "sha1")
    return base64.b64encode(digest).decode()


def mint_rest_credentials(
    secret: str, region: str, participant: str, ttl: float, wall_now: float
) -> tuple[str, str]:
    """Region-bound REST credentials valid for ``ttl`` seconds: ``(username, password)``."""
    username = f"{int(wall_now + ttl)}:{region}:{participant}"
    return username, rest_password(secret, username)


@dataclass(frozen=True, slots=True)
class RestUsername:
    """A parsed REST username."""

    expiry: int
    region: str | None
    """None for coturn's unbound ``<expiry>:<user>`` form."""
    participant: str


def parse_rest_username(username: str) -> RestUsername | None:
    """Split ``<expiry>:<region>:<participant>`` (or ``<expiry>:<user>``); None if malformed."""
    expiry_text, sep, rest = username.partition(":")
    if not sep or not expiry_text.isdigit() or len(expiry_text) > 12 or not rest:
        return None
    region, sep, participant = rest.partition(":")
    if not sep:
        return RestUsername(int(expiry_text), None, rest)
    if not region or not participant:
        return None
    return RestUsername(int(expiry_text), region, participant)


@dataclass(frozen=True, slots=True)
class Credential:
    """A verified identity and the key its messages are signed with."""

    username: str
    key: bytes


class RestAuthenticator:
    """Checks a USERNAME against the node's region and the valid secrets.

    ``secrets`` is a callable so a node fed from etcd always sees the current key set
    (a rotation takes effect without restarting anything).
    """

    __slots__ = ("accept_unbound", "realm", "region", "secrets")

    def __init__(
        self,
        region: str,
        realm: str,
        secrets: Callable[[], Sequence[str]],
        *,
        accept_unbound: bool = False,
    ) -> None:
        self.region = region
        self.realm = realm
        self.secrets = secrets
        self.accept_unbound = accept_unbound

    def username_problem(self, username: str, wall_now: float) -> str | None:
        """Why ``username`` can never authenticate here (a metrics reason), or None."""
        parsed = parse_rest_username(username)
        if parsed is None:
            return "bad_username"
        if parsed.region is None:
            if not self.accept_unbound:
                return "unbound_username"
        elif parsed.region != self.region:
            return "wrong_region"
        if parsed.expiry <= wall_now:
            return "expired"
        return None

    def candidate_keys(self, username: str) -> list[bytes]:
        """Long-term keys of ``username``, one per valid secret (current first)."""
        return [
            long_term_key(username, self.realm, rest_password(secret, username))
            for secret in self.secrets()
        ]


__all__ = [
    "Credential",
    "NonceIssuer",
    "RestAuthenticator",
    "RestUsername",
    "mint_rest_credentials",
    "parse_rest_username",
    "rest_password",
]
