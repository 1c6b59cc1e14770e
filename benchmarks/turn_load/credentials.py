"""TURN REST API credentials (draft-uberti-behave-turn-rest), as coturn's ``use-auth-secret``.

The username is ``<expiry>:<user>``; Regio binds credentials to a region by making it
``<expiry>:<region>:<participant>`` so a node of another region can refuse them. The password is
``base64(HMAC-SHA1(secret, username))`` in both forms, which is why one generator can drive coturn
and ``regio turn`` alike.
"""

from __future__ import annotations

import base64
import hmac


def rest_username(expiry_unix: int, user: str, region: str | None = None) -> str:
    """``<expiry>:<region>:<user>`` when a region is given, else coturn's ``<expiry>:<user>``."""
    if region:
        return f"{expiry_unix}:{region}:{user}"
    return f"{expiry_unix}:{user}"


def rest_password(secret: str, username: str) -> str:
    """``base64(HMAC-SHA1(secret, username))`` - what the server recomputes from its secret."""
    digest = hmac.digest(secret.encode(), username.encode(), "sha1")
    return base64.b64encode(digest).decode("ascii")


__all__ = ["rest_password", "rest_username"]
