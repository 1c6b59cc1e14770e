"""Join tokens and TURN REST credentials: round trips, tampering, rotation, cross-checks."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.schema import KeySet, SecretKey
from control.secrets import new_key
from control.tokens import (
    BadSignature,
    Expired,
    JoinClaims,
    MalformedToken,
    TokenError,
    UnknownKey,
    WrongRouter,
    sign_token,
    verify_token,
)
from control.turn_credentials import mint_turn_credential
from turn.server.auth import parse_rest_username, rest_password

KEY = new_key(1_000.0)
OLD = SecretKey("old-kid", new_key(0.0).secret, 0.0, 2_000.0)
KEYS = KeySet("token", KEY.kid, (OLD, KEY))

text = st.text(min_size=1, max_size=40)
claims_strategy = st.builds(
    JoinClaims,
    kid=st.just(KEY.kid), room=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    participant=st.from_regex(r"[A-Za-z0-9_-]{16}", fullmatch=True), router=text, region=text,
    policy=st.sampled_from(["eea", "nearest"]), mode=st.sampled_from(["sfu", "p2p"]),
    expires_at=st.integers(1_500, 2**40), issued_at=st.integers(0, 1_400),
    name=st.none() | st.text(max_size=64),
)


@given(claims_strategy)
def test_round_trip(claims: JoinClaims) -> None:
    token = sign_token(claims, KEY)
    assert verify_token(token, KEYS, claims.router, now=1_400.0) == claims
    assert verify_token(token, {KEY.kid: KEY}, claims.router, now=1_400.0) == claims


@given(claims_strategy, st.data())
def test_any_tampering_is_rejected(claims: JoinClaims, data: st.DataObject) -> None:
    token = sign_token(claims, KEY)
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from("ABCDEFabcdef0123456789-_."))
    tampered = token[:index] + replacement + token[index + 1:]
    if tampered == token:
        return
    try:
        decoded = verify_token(tampered, KEYS, claims.router, now=1_400.0)
    except TokenError:
        return
    # base64url's last character carries spare bits: a few edits decode to identical bytes.
    assert decoded == claims


def _claims(**changes: object) -> JoinClaims:
    base = dict(kid=KEY.kid, room="r", participant="p", router="eu-router-1", region="eu",
                policy="eea", mode="sfu", expires_at=1_500, issued_at=1_000)
    base.update(changes)
    return JoinClaims(**base)  # type: ignore[arg-type]


def test_rejections() -> None:
    token = sign_token(_claims(), KEY)
    with pytest.raises(WrongRouter):
        verify_token(token, KEYS, "us-router-1", now=1_100)
    with pytest.raises(Expired):
        verify_token(token, KEYS, "eu-router-1", now=1_500)
    with pytest.raises(UnknownKey):
        verify_token(token, {OLD.kid: OLD}, "eu-router-1", now=1_100)
    other = SecretKey(KEY.kid, new_key().secret, 0.0, None)
    with pytest.raises(BadSignature):
        verify_token(token, {KEY.kid: other}, "eu-router-1", now=1_100)
    payload = token.split(".")[1]
    forged = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": KEY.kid}).encode())
    with pytest.raises(MalformedToken):
        verify_token(f"{forged.decode().rstrip('=')}.{payload}.", KEYS, None, now=1_100)
    with pytest.raises(MalformedToken):
        verify_token("a.b", KEYS, None, now=1_100)
    assert verify_token(token, KEYS, None, now=1_100).router == "eu-router-1"


def test_rotation_overlap_window() -> None:
    token = sign_token(_claims(kid=OLD.kid, expires_at=5_000), OLD)
    assert verify_token(token, KEYS, "eu-router-1", now=1_999).kid == OLD.kid
    with pytest.raises(UnknownKey):
        verify_token(token, KEYS, "eu-router-1", now=2_000)
    with pytest.raises(UnknownKey):
        verify_token(token, {OLD.kid: OLD}, "eu-router-1", now=2_000)


@given(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
       st.from_regex(r"[A-Za-z0-9_-]{1,30}", fullmatch=True), st.integers(1, 10**6))
def test_turn_credentials_match_the_turn_server(region: str, participant: str, ttl: int) -> None:
    credential = mint_turn_credential(KEY, region, participant, ttl, 1_000.0)
    assert credential.credential == rest_password(KEY.secret, credential.username)
    parsed = parse_rest_username(credential.username)
    assert parsed is not None
    assert (parsed.region, parsed.participant, parsed.expiry) == (region, participant,
                                                                  1_000 + ttl)


def test_turn_credentials_refuse_colons() -> None:
    with pytest.raises(ValueError):
        mint_turn_credential(KEY, "eu:x", "p", 60, 0.0)
