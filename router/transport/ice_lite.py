"""ICE-lite agent (RFC 8445 §2.5, §7.3) with consent freshness (RFC 7675) for the router side.

A lite agent only answers checks; the browser (always the full, controlling agent against a lite
peer) runs them. Why each rule:

* A request gets an answer only if USERNAME is ``<our ufrag>:<their ufrag>`` and
  MESSAGE-INTEGRITY verifies with our password (and FINGERPRINT is present and right). Anything
  else gets no answer at all, so the router never reflects traffic at an unauthenticated
  address; each refusal is counted by reason.
* A lite agent is always controlled. A request claiming ICE-CONTROLLED is a role conflict the
  full agent must resolve by switching, so it gets 487 whatever its tie-breaker.
* USE-CANDIDATE nominates the pair: the request's source address becomes *validated* (DTLS and
  SRTP are accepted from it) and *selected* (where we send). A later nomination from another
  address moves the peer there (network change); the old address stays validated while its
  consent lasts, so packets still in flight are not lost.
* Consent: the browser's checks are its consent. Each valid check refreshes its address; an
  address silent for the consent timeout is forgotten, and when the selected address lapses with
  no fresh alternative we emit :class:`ConsentLost` and stop sending for good.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Final

from router.transport.config import TransportConfig
from router.transport.events import Address, ConsentLost, IceConnected, TransportEvent
from turn.stun import (
    ErrorCode,
    IceControlled,
    MessageClass,
    Method,
    StunDecodeError,
    StunEncodeError,
    StunMessage,
    UnknownAttributes,
    UseCandidate,
    Username,
    XorMappedAddress,
    parse_message,
    short_term_key,
)

_ICE_CHARS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def generate_ufrag(length: int = 8) -> str:
    """A random ICE username fragment (RFC 8839: at least 4 ice-chars, 24 bits of randomness)."""
    return "".join(secrets.choice(_ICE_CHARS) for _ in range(length))


def generate_password(length: int = 24) -> str:
    """A random ICE password (RFC 8839: at least 22 ice-chars, 128 bits of randomness)."""
    return "".join(secrets.choice(_ICE_CHARS) for _ in range(length))


@dataclass(slots=True)
class IceStats:
    """Counters of an ICE agent; every unanswered request is counted under one reason."""

    #: Authenticated Binding requests answered with success.
    answered: int = 0
    #: Datagrams that did not parse as STUN (or had a wrong FINGERPRINT).
    malformed: int = 0
    #: Requests without USERNAME, or with a USERNAME not ``ours:theirs``.
    bad_username: int = 0
    #: Requests whose MESSAGE-INTEGRITY was missing or did not verify.
    bad_integrity: int = 0
    #: Requests claiming ICE-CONTROLLED: answered with 487.
    role_conflicts: int = 0
    #: Binding indications (keepalives): accepted silently.
    indications: int = 0
    #: Other methods or classes, unmatched responses: ignored.
    unexpected: int = 0


class IceLiteAgent:
    """The controlled, lite side of one peer's ICE session."""

    def __init__(
        self,
        *,
        local_ufrag: str | None = None,
        local_password: str | None = None,
        remote_ufrag: str | None = None,
        remote_password: str | None = None,
        config: TransportConfig | None = None,
    ) -> None:
        self.local_ufrag = local_ufrag or generate_ufrag()
        self.local_password = local_password or generate_password()
        self.remote_ufrag = remote_ufrag
        #: Kept for completeness (a lite agent never signs requests with it).
        self.remote_password = remote_password
        self.stats = IceStats()
        #: Validated addresses and the time of their last valid check, oldest first.
        self.nominated: dict[Address, float] = {}
        #: Where media goes: the most recently nominated address with consent.
        self.selected: Address | None = None
        #: True once consent lapsed with no alternative; terminal.
        self.consent_lost = False
        self._config = config or TransportConfig()
        self._key = short_term_key(self.local_password)
        self._username_prefix = f"{self.local_ufrag}:"
        self._events: deque[TransportEvent] = deque()

    def set_remote_credentials(self, ufrag: str, password: str) -> None:
        """The peer's ``a=ice-ufrag``/``a=ice-pwd`` from SDP (may arrive after we are created)."""
        self.remote_ufrag = ufrag
        self.remote_password = password

    def _username_ok(self, message: StunMessage) -> bool:
        attr = message.get(Username)
        if attr is None:
            return False
        if self.remote_ufrag is None:
            return attr.value.startswith(self._username_prefix)
        return attr.value == self._username_prefix + self.remote_ufrag

    def handle_stun(self, data: bytes, addr: Address, now: float) -> bytes | None:
        """Process one STUN datagram from ``addr``; return the response to send back, if any."""
        try:
            message = parse_message(data)
        except StunDecodeError:
            self.stats.malformed += 1
            return None
        if message.method != Method.BINDING:
            self.stats.unexpected += 1
            return None
        if message.cls is MessageClass.INDICATION:
            self.stats.indications += 1
            return None
        if message.cls is not MessageClass.REQUEST:
            self.stats.unexpected += 1
            return None
        if not message.has_fingerprint:
            self.stats.malformed += 1
            return None
        if not self._username_ok(message):
            self.stats.bad_username += 1
            return None
        if not message.integrity_ok(self._key):
            self.stats.bad_integrity += 1
            return None
        return self._answer(message, addr, now)

    def _answer(self, message: StunMessage, addr: Address, now: float) -> bytes | None:
        unknown = message.unknown_required
        if unknown:
            reply = message.error_response(420, UnknownAttributes(unknown))
        elif message.get(IceControlled) is not None:
            self.stats.role_conflicts += 1
            reply = message.error_response(487)
        else:
            try:
                mapped = XorMappedAddress(ip_address(addr[0]), addr[1])
            except ValueError:
                self.stats.unexpected += 1
                return None
            reply = message.response(mapped)
            self._record_check(addr, now, message.get(UseCandidate) is not None)
            self.stats.answered += 1
        try:
            return reply.encode(integrity_key=self._key, fingerprint=True)
        except StunEncodeError:
            self.stats.unexpected += 1
            return None

    def _record_check(self, addr: Address, now: float, use_candidate: bool) -> None:
        if self.consent_lost:
            return
        nominated = self.nominated
        if addr in nominated:
            del nominated[addr]  # re-insert: the dict stays ordered by last check
            nominated[addr] = now
        elif use_candidate:
            nominated[addr] = now
            while len(nominated) > self._config.max_addresses:
                del nominated[next(iter(nominated))]
        else:
            return
        if use_candidate and self.selected != addr:
            self.selected = addr
            self._events.append(IceConnected(addr))

    def is_validated(self, addr: Address) -> bool:
        """Whether DTLS and SRTP from ``addr`` may be accepted (nominated, consent fresh)."""
        return addr in self.nominated

    def can_send(self, addr: Address) -> bool:
        """Whether we may send to ``addr``: it is validated and consent has not been lost."""
        return not self.consent_lost and addr in self.nominated

    def get_timer(self) -> float | None:
        """When the oldest validated address's consent expires, or ``None``."""
        if not self.nominated:
            return None
        return min(self.nominated.values()) + self._config.consent_timeout

    def handle_timer(self, now: float) -> None:
        """Forget addresses whose consent lapsed; move or lose the selected address."""
        timeout = self._config.consent_timeout
        expired = [a for a, t in self.nominated.items() if now >= t + timeout]
        for addr in expired:
            del self.nominated[addr]
        if self.selected is None or self.selected in self.nominated:
            return
        lapsed = self.selected
        if self.nominated:
            # The peer still checks another nominated address: follow it.
            self.selected = next(reversed(self.nominated))
            self._events.append(IceConnected(self.selected))
            return
        self.selected = None
        self.consent_lost = True
        self._events.append(ConsentLost(lapsed))

    def next_event(self) -> TransportEvent | None:
        """The next :class:`IceConnected` or :class:`ConsentLost`, or ``None``."""
        return self._events.popleft() if self._events else None


def error_code_of(message: StunMessage) -> int | None:
    """The ERROR-CODE number of an error response, if any."""
    err = message.get(ErrorCode)
    return None if err is None else err.code


__all__ = [
    "IceLiteAgent",
    "IceStats",
    "error_code_of",
    "generate_password",
    "generate_ufrag",
]
