"""Join tokens: what the front door signs and a router verifies before admitting a participant.

Format: a compact JWS (RFC 7515) with HS256, i.e. ``base64url(header).base64url(claims).
base64url(HMAC-SHA256(key, header "." claims))`` with the key id in the header (and repeated in
the claims). A standard form because routers in other languages, and operators with ``jq``,
can read it; a narrow verifier because only one algorithm is ever accepted (no ``alg``
confusion, no ``none``): a header that is not exactly ours is rejected before any key is used.

The key is the join-token secret of :mod:`control.secrets` (a :class:`~control.schema.KeySet`
rotated with an overlap window): tokens are signed with the current key, and a verifier
accepts any key that is still valid, so tokens minted just before a rotation keep working.

Claims bind the token to one router (``router``): a router refuses a token for another node,
which is what keeps a participant on the node the residency rules chose (ARCHITECTURE.md §4).
No client address is ever in a token.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from control.jsonlimits import JsonRefused, loads_limited
from control.schema import KeySet, SecretKey

ALGORITHM = "HS256"
MAX_TOKEN_LENGTH = 4096
"""Longer inputs are refused before decoding anything (a token is a few hundred bytes)."""


class TokenError(ValueError):
    """A token that must not be accepted; the subclass says why."""


class MalformedToken(TokenError):
    """Not a token of ours: bad structure, encoding, header or claims."""


class UnknownKey(TokenError):
    """Signed with a key id the verifier does not know or that expired (rotated out)."""


class BadSignature(TokenError):
    """The signature does not match: tampered with, or signed with another key."""


class Expired(TokenError):
    """The token's expiry has passed."""


class WrongRouter(TokenError):
    """The token is for another router."""


@dataclass(frozen=True, slots=True)
class JoinClaims:
    """What a join token says."""

    kid: str
    """Key id of the signing key."""
    room: str
    participant: str
    """Random participant id (never derived from the client address)."""
    router: str
    """Node id of the router the participant must join through."""
    region: str
    """Region of that router."""
    policy: str
    """The room's residency policy (``eea`` or ``nearest``)."""
    mode: str
    """``sfu`` (the router forwards media) or ``p2p`` (signaling and chat only)."""
    expires_at: int
    """Unix time after which routers refuse the token."""
    issued_at: int
    name: str | None = None
    """Display name the participant asked for, if any."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kid": self.kid,
            "room": self.room,
            "participant": self.participant,
            "router": self.router,
            "region": self.region,
            "policy": self.policy,
            "mode": self.mode,
            "exp": self.expires_at,
            "iat": self.issued_at,
        }
        if self.name is not None:
            out["name"] = self.name
        return out

    @classmethod
    def from_json(cls, data: Any) -> JoinClaims:
        if not isinstance(data, dict):
            raise MalformedToken("claims are not a JSON object")
        try:
            strings = {k: data[k] for k in ("kid", "room", "participant", "router", "region",
                                            "policy", "mode")}
            numbers = {k: data[k] for k in ("exp", "iat")}
        except KeyError as exc:
            raise MalformedToken(f"claim {exc.args[0]!r} missing") from None
        for key, value in strings.items():
            if not isinstance(value, str):
                raise MalformedToken(f"claim {key!r} is not a string")
        for key, value in numbers.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise MalformedToken(f"claim {key!r} is not an integer")
        name = data.get("name")
        if name is not None and not isinstance(name, str):
            raise MalformedToken("claim 'name' is not a string")
        return cls(name=name, expires_at=numbers["exp"], issued_at=numbers["iat"], **strings)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or "=" in text:
        raise MalformedToken("bad base64url segment")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MalformedToken("bad base64url segment") from None


@functools.lru_cache(maxsize=64)
def _header(kid: str) -> str:
    return _b64(json.dumps({"alg": ALGORITHM, "kid": kid, "typ": "JWT"},
                           sort_keys=True, separators=(",", ":")).encode())


def _key_bytes(key: SecretKey) -> bytes:
    return _decode_secret(key.secret)


@functools.lru_cache(maxsize=64)
def _decode_secret(secret: str) -> bytes:
    # Same decoding as control.secrets.key_bytes (kept local: secrets imports the etcd client).
    # Cached: every join signs a token, and decoding the key each time showed in profiles.
    return base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))


def _mac(key: SecretKey, signing_input: str) -> bytes:
    return hmac.digest(_key_bytes(key), signing_input.encode("ascii"), hashlib.sha256)


def sign_token(claims: JoinClaims, key: SecretKey) -> str:
    """The compact token for ``claims``, signed with ``key`` (whose id must be the claims')."""
    if claims.kid != key.kid:
        raise ValueError("claims.kid must be the signing key's id")
    payload = _b64(json.dumps(claims.to_json(), sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False).encode())
    signing_input = f"{_header(key.kid)}.{payload}"
    return f"{signing_input}.{_b64(_mac(key, signing_input))}"


def peek_kid(token: str) -> str:
    """The key id in a token's header (unverified; use it only to pick a key)."""
    parts = token.split(".")
    if len(token) > MAX_TOKEN_LENGTH or len(parts) != 3:
        raise MalformedToken("not a three-part compact token")
    try:
        header = loads_limited(_unb64(parts[0]), max_depth=1)
    except JsonRefused:
        raise MalformedToken("header is not JSON") from None
    if (not isinstance(header, dict) or header.get("alg") != ALGORITHM
            or not isinstance(header.get("kid"), str) or set(header) - {"alg", "kid", "typ"}):
        raise MalformedToken("header is not an HS256 header with a key id")
    kid: str = header["kid"]
    return kid


def verify_token(
    token: str,
    keys: KeySet | Mapping[str, SecretKey],
    router_node: str | None,
    now: float,
    *,
    expired_grace: float = 0.0,
) -> JoinClaims:
    """The claims of a valid token for ``router_node``, or a :class:`TokenError`.

    ``expired_grace`` accepts a token up to that many seconds past its expiry: the front door
    uses it to let a participant whose (short-lived) token ran out during a meeting rejoin as
    the same participant; routers never pass it.

    ``keys`` is the join-token :class:`KeySet` (every key valid at ``now`` is accepted: the
    rotation overlap) or a mapping of already-valid keys by id (``SecretsView.valid``); keys
    past their ``expires_at`` are refused either way. ``router_node`` None skips the router
    check (tools that only inspect tokens); a router always passes its own node id.
    """
    kid = peek_kid(token)
    valid = keys.valid_keys(now) if isinstance(keys, KeySet) else keys
    key = valid.get(kid)
    if key is None or not (key.valid_at(now) or isinstance(keys, KeySet)):
        raise UnknownKey(f"unknown or expired key id {kid!r}")
    header, payload, signature = token.split(".")
    expected = _mac(key, f"{header}.{payload}")
    if not hmac.compare_digest(expected, _unb64(signature)):
        raise BadSignature("signature does not match")
    try:
        claims = JoinClaims.from_json(loads_limited(_unb64(payload), max_depth=1))
    except JsonRefused:
        raise MalformedToken("claims are not JSON") from None
    if claims.kid != kid:
        raise MalformedToken("claims name another key than the header")
    if now >= claims.expires_at + expired_grace:
        raise Expired(f"expired at {claims.expires_at}")
    if router_node is not None and claims.router != router_node:
        raise WrongRouter("token is for another router")
    return claims


__all__ = [
    "BadSignature",
    "Expired",
    "JoinClaims",
    "MalformedToken",
    "TokenError",
    "UnknownKey",
    "WrongRouter",
    "peek_kid",
    "sign_token",
    "verify_token",
]
