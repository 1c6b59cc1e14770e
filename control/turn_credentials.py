"""Minting TURN REST credentials bound to a region (the front door's half of TURN auth).

The form is the TURN REST API one that coturn's ``use-auth-secret`` implements, with Regio's
region in the username so that a TURN node refuses credentials minted for another region
(ARCHITECTURE.md §4)::

    username   = "<expiry unix time>:<region>:<participant>"
    credential = base64(HMAC-SHA1(secret, username))

``secret`` is the text of the current TURN key of :mod:`control.secrets` used *as is* (its
UTF-8 bytes), exactly like coturn's ``static-auth-secret`` and ``regio turn``, which accept any
key valid in the rotation overlap. A participant id must not contain ``:``, so a username
always splits into exactly three fields.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from control.schema import SecretKey


@dataclass(frozen=True, slots=True)
class TurnCredential:
    """One username/credential pair for an ICE server entry."""

    username: str
    credential: str
    expires_at: int
    region: str


def rest_credential(secret: str, username: str) -> str:
    """base64(HMAC-SHA1(secret, username)), as coturn computes it."""
    digest = hmac.digest(secret.encode(), username.encode(), hashlib.sha1)
    return base64.b64encode(digest).decode("ascii")


def mint_turn_credential(
    key: SecretKey | str, region: str, participant: str, ttl: float, now: float
) -> TurnCredential:
    """Credentials for ``participant`` valid ``ttl`` seconds on TURN nodes of ``region``."""
    if ":" in region or ":" in participant or not region or not participant:
        raise ValueError("region and participant must be non-empty and free of ':'")
    expires = int(now + ttl)
    username = f"{expires}:{region}:{participant}"
    secret = key.secret if isinstance(key, SecretKey) else key
    return TurnCredential(username, rest_credential(secret, username), expires, region)


__all__ = ["TurnCredential", "mint_turn_credential", "rest_credential"]
