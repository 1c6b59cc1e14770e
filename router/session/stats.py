"""Counters of the session core, read by the metrics collector (never labelled by address).

Plain integers bumped on the hot path (a Prometheus client call per packet would cost more
than the forwarding itself); :mod:`router.metrics` exports them at scrape time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from router.transport import PeerTransport

SRTP_FAILURE_KINDS = ("auth", "replay", "bad_length", "other")
#: STUN requests a known peer left unanswered, by reason (unknown usernames are the mux's).
STUN_REFUSAL_KINDS = ("bad_integrity", "bad_username", "malformed")


@dataclass(slots=True)
class SessionStats:
    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    rtcp_in: int = 0
    chat_relayed: int = 0
    relayed: int = 0
    dtls_failures: int = 0
    #: SRTP drops of peers already closed (live peers are summed at scrape time).
    srtp_failures_closed: Counter[str] = field(default_factory=Counter)
    #: STUN refusals of peers already closed.
    stun_refusals_closed: Counter[str] = field(default_factory=Counter)
    joins: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    transports_closed: Counter[str] = field(default_factory=Counter)
    #: Outcomes of making etcd's room placement follow a room opened here
    #: (created, rebound, held, elsewhere, failed; see router.rooms).
    room_claims: Counter[str] = field(default_factory=Counter)

    def count_join(self, result: str) -> None:
        self.joins[result] += 1

    def count_message(self, kind: str) -> None:
        self.messages[kind] += 1

    def count_error(self, code: str) -> None:
        self.errors[code] += 1

    def count_transport_closed(self, peer: PeerTransport, reason: str) -> None:
        """Classify why a transport closed (bounded label set, no addresses)."""
        if reason.startswith("DTLS") and "close_notify" not in reason:
            self.dtls_failures += 1
            kind = "dtls_failure"
        elif "consent" in reason:
            kind = "consent_lost"
        elif "did not complete" in reason:
            kind = "connect_timeout"
        else:
            kind = "other"
        self.transports_closed[kind] += 1

    def absorb_peer(self, peer: PeerTransport) -> None:
        """Keep a closing peer's SRTP drop counters (its object is about to be forgotten)."""
        for kind, value in srtp_failures(peer).items():
            self.srtp_failures_closed[kind] += value
        for kind, value in stun_refusals(peer).items():
            self.stun_refusals_closed[kind] += value


def srtp_failures(peer: PeerTransport) -> dict[str, int]:
    """A peer's SRTP drops by kind (zeros before keys exist)."""
    s = peer.srtp_stats
    if s is None:
        return dict.fromkeys(SRTP_FAILURE_KINDS, 0)
    return {"auth": s.auth_failures, "replay": s.replay_failures,
            "bad_length": s.bad_length, "other": s.other_failures}


def stun_refusals(peer: PeerTransport) -> dict[str, int]:
    """A peer's unanswered STUN requests by reason (bad MESSAGE-INTEGRITY and the like)."""
    s = peer.ice.stats
    return {"bad_integrity": s.bad_integrity, "bad_username": s.bad_username,
            "malformed": s.malformed}


__all__ = [
    "SRTP_FAILURE_KINDS",
    "STUN_REFUSAL_KINDS",
    "SessionStats",
    "srtp_failures",
    "stun_refusals",
]
