"""Port reservations of RFC 8656 §7.2: EVEN-PORT with the R bit, then RESERVATION-TOKEN.

An RTP/RTCP client (coturn's ``turnutils_uclient`` in its default mode, older SIP and media
gateways) asks its first Allocate for an even relay port *and* for the port above it to be
kept; the answer carries an 8-byte RESERVATION-TOKEN, and a second Allocate (from another
five-tuple) that presents the token gets exactly that reserved port. The reserved port is held
by a bound relay (the driver's socket) so no other allocation and no other process can take it;
the reservation ends when it is redeemed or after :data:`RESERVATION_LIFETIME` seconds, when
the relay is closed and its port goes back to the pool.

Tokens are random (unguessable: a token is as good as the port it names), single-use, and
bounded in number by the relay port range itself (every reservation holds one port).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from turn.server.allocation import Relay

RESERVATION_LIFETIME: Final = 30.0
"""RFC 8656 §7.2: the server keeps a reservation for about 30 seconds."""


@dataclass(slots=True)
class Reservation:
    relay: Relay
    expires: float


class Reservations:
    """Tokens to held relays."""

    __slots__ = ("_held", "lifetime")

    def __init__(self, lifetime: float = RESERVATION_LIFETIME) -> None:
        self.lifetime = lifetime
        self._held: dict[bytes, Reservation] = {}

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, relay: Relay, now: float) -> tuple[bytes, float]:
        """Keep ``relay`` for a later Allocate: its token and when the reservation ends."""
        token = os.urandom(8)
        while token in self._held:
            token = os.urandom(8)
        expires = now + self.lifetime
        self._held[token] = Reservation(relay, expires)
        return token, expires

    def peek(self, token: bytes) -> Relay | None:
        """The relay ``token`` holds, if the reservation is still live (nothing changes)."""
        held = self._held.get(token)
        return None if held is None else held.relay

    def take(self, token: bytes) -> Relay | None:
        """Redeem ``token`` (single use)."""
        held = self._held.pop(token, None)
        return None if held is None else held.relay

    def expire(self, token: bytes, when: float) -> Relay | None:
        """The relay to close if ``token``'s reservation ended at ``when`` unredeemed."""
        held = self._held.get(token)
        if held is None or held.expires != when:
            return None
        del self._held[token]
        return held.relay

    def release_all(self) -> list[Relay]:
        relays = [h.relay for h in self._held.values()]
        self._held.clear()
        return relays


__all__ = ["RESERVATION_LIFETIME", "Reservation", "Reservations"]
