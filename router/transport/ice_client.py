"""ICE controlling agent for synthetic clients and tests (RFC 8445 §7.2, RFC 7675).

The router is lite and has one candidate, so the client needs no candidate gathering or pairing:
it checks one pair, the router's address, and nominates it at once (what browsers do against a
lite peer). Then it keeps consent: a fresh Binding transaction every ``consent_interval``
randomised by 0.8-1.2, and if no check has succeeded for ``consent_timeout`` it stops sending.

Randomness comes through an injected ``random()`` so tests are deterministic; transaction ids and
the tie-breaker still come from :mod:`secrets` unless given, since they are not about timing.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final

from router.transport.config import TransportConfig
from router.transport.events import (
    Address,
    ConsentLost,
    IceConnected,
    TransportClosed,
    TransportEvent,
)
from router.transport.ice_lite import IceStats, generate_password, generate_ufrag
from turn.stun import (
    IceControlling,
    MessageClass,
    Method,
    Priority,
    StunDecodeError,
    StunMessage,
    UseCandidate,
    Username,
    parse_message,
    short_term_key,
)

#: Priority a peer-reflexive host candidate would get (RFC 8445 §5.1.2.1: type preference 110,
#: local preference 65535, component 1).
PRFLX_PRIORITY: Final = (110 << 24) | (65535 << 8) | 255


class IceClientState(Enum):
    """Lifecycle of an :class:`IceControllingAgent`."""

    NEW = "new"
    CHECKING = "checking"
    CONNECTED = "connected"
    FAILED = "failed"


@dataclass(slots=True)
class _Transaction:
    request: bytes
    sent: int
    retransmit_at: float
    rto: float
    nominating: bool


class IceControllingAgent:
    """Checks and nominates the router's address, then keeps consent alive."""

    def __init__(
        self,
        *,
        remote_ufrag: str,
        remote_password: str,
        remote_address: Address,
        local_ufrag: str | None = None,
        local_password: str | None = None,
        random: Callable[[], float],
        tiebreaker: int | None = None,
        config: TransportConfig | None = None,
    ) -> None:
        self.local_ufrag = local_ufrag or generate_ufrag()
        self.local_password = local_password or generate_password()
        self.remote_address = remote_address
        self.state = IceClientState.NEW
        self.stats = IceStats()
        #: Time of the last successful check (the consent clock), or ``None`` before the first.
        self.last_success: float | None = None
        self._random = random
        self._tiebreaker = secrets.randbits(64) if tiebreaker is None else tiebreaker
        self._config = config or TransportConfig()
        self._key = short_term_key(remote_password)
        self._username = Username(f"{remote_ufrag}:{self.local_ufrag}")
        self._transactions: dict[bytes, _Transaction] = {}
        self._outgoing: list[bytes] = []
        self._events: deque[TransportEvent] = deque()
        self._next_consent: float | None = None

    # -- API --------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Send the nominating check (USE-CANDIDATE)."""
        if self.state is IceClientState.NEW:
            self.state = IceClientState.CHECKING
            self._send_check(now, nominating=True)

    def can_send(self) -> bool:
        """Whether the path is nominated and consent holds."""
        return self.state is IceClientState.CONNECTED

    def handle_stun(self, data: bytes, now: float) -> None:
        """Process a STUN datagram from the router's address."""
        try:
            message = parse_message(data)
        except StunDecodeError:
            self.stats.malformed += 1
            return
        transaction = self._transactions.get(message.transaction_id)
        if (
            transaction is None
            or message.method != Method.BINDING
            or message.cls not in (MessageClass.SUCCESS, MessageClass.ERROR)
        ):
            self.stats.unexpected += 1
            return
        if not message.integrity_ok(self._key):
            self.stats.bad_integrity += 1
            return
        del self._transactions[message.transaction_id]
        if message.cls is MessageClass.ERROR:
            # A lite router never disputes our role; any error means the check failed.
            self.stats.role_conflicts += 1
            if transaction.nominating:
                self._fail("ICE check refused by the peer")
            return
        self.stats.answered += 1
        if self.state is IceClientState.FAILED:
            return
        self.last_success = now
        if self.state is IceClientState.CHECKING:
            self.state = IceClientState.CONNECTED
            self._events.append(IceConnected(self.remote_address))
            self._schedule_consent(now)

    def datagrams_to_send(self) -> list[bytes]:
        """STUN requests to send to :attr:`remote_address`."""
        out, self._outgoing = self._outgoing, []
        return out

    def get_timer(self) -> float | None:
        """The next retransmission, consent check or consent expiry."""
        if self.state is IceClientState.FAILED:
            return None
        deadlines = [t.retransmit_at for t in self._transactions.values()]
        if self._next_consent is not None:
            deadlines.append(self._next_consent)
        if self.last_success is not None:
            deadlines.append(self.last_success + self._config.consent_timeout)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        """Retransmit, start a consent check, or declare consent lost."""
        if self.state is IceClientState.FAILED:
            return
        if (
            self.last_success is not None
            and now >= self.last_success + self._config.consent_timeout
        ):
            self._events.append(ConsentLost(self.remote_address))
            self._fail("ICE consent lost")
            return
        for tid, t in list(self._transactions.items()):
            if now < t.retransmit_at:
                continue
            if t.sent >= self._config.stun_max_transmissions:
                del self._transactions[tid]
                if t.nominating and self.state is IceClientState.CHECKING:
                    self._fail("ICE check timed out")
                    return
                continue
            t.sent += 1
            t.rto *= 2
            t.retransmit_at = now + t.rto
            self._outgoing.append(t.request)
        if self._next_consent is not None and now >= self._next_consent:
            self._send_check(now, nominating=False)
            self._schedule_consent(now)

    def next_event(self) -> TransportEvent | None:
        """The next :class:`IceConnected`, :class:`ConsentLost` or :class:`TransportClosed`."""
        return self._events.popleft() if self._events else None

    # -- internals --------------------------------------------------------------------------

    def _schedule_consent(self, now: float) -> None:
        factor = 0.8 + 0.4 * self._random()
        self._next_consent = now + self._config.consent_interval * factor

    def _send_check(self, now: float, *, nominating: bool) -> None:
        tid = secrets.token_bytes(12)
        attrs = [
            self._username,
            Priority(PRFLX_PRIORITY),
            IceControlling(self._tiebreaker),
        ]
        if nominating:
            attrs.append(UseCandidate())
        request = StunMessage(Method.BINDING, MessageClass.REQUEST, tid, tuple(attrs)).encode(
            integrity_key=self._key, fingerprint=True
        )
        rto = self._config.stun_rto
        self._transactions[tid] = _Transaction(request, 1, now + rto, rto, nominating)
        self._outgoing.append(request)

    def _fail(self, reason: str) -> None:
        self.state = IceClientState.FAILED
        self._transactions.clear()
        self._next_consent = None
        self._events.append(TransportClosed(reason))


__all__ = ["PRFLX_PRIORITY", "IceClientState", "IceControllingAgent"]
