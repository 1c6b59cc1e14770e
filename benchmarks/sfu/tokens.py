"""Join tokens for synthetic participants of the benchmark router (standalone key)."""

from __future__ import annotations

import time

from benchmarks.sfu.router_proc import BENCH_KEY, NODE_ID
from control.tokens import JoinClaims, sign_token


def join_token(room: str, participant: str, *, router: str = NODE_ID, ttl: int = 3600) -> str:
    """A token the benchmark router accepts for ``participant`` in ``room`` (SFU mode)."""
    now = int(time.time())
    claims = JoinClaims(kid=BENCH_KEY.kid, room=room, participant=participant, router=router,
                        region="eu-west", policy="eea", mode="sfu", expires_at=now + ttl,
                        issued_at=now)
    return sign_token(claims, BENCH_KEY)


__all__ = ["join_token"]
