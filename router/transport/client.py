"""Client side of a WebRTC transport: ICE controlling + DTLS + SRTP, for synthetic clients.

``regio bench sfu`` and the tests drive real handshakes against the router with this, so it
follows what a browser does against a lite peer: nominate the router's single candidate at
once, start DTLS (usually as the client, since the router answers ``setup:passive``) as soon as
the check succeeds, and keep consent with randomised checks.
"""

from __future__ import annotations

from collections.abc import Callable

from router.transport.base import BaseTransport, EventSink, Outbox
from router.transport.certificate import DtlsCertificate, Fingerprint
from router.transport.config import TransportConfig
from router.transport.dtls import DtlsRole
from router.transport.events import Address, ConsentLost, IceConnected, TransportClosed
from router.transport.ice_client import IceControllingAgent


class ClientTransport(BaseTransport):
    """One synthetic client's transport to one router address."""

    def __init__(
        self,
        *,
        remote_address: Address,
        remote_ufrag: str,
        remote_password: str,
        remote_fingerprint: Fingerprint | str,
        random: Callable[[], float],
        dtls_role: DtlsRole = DtlsRole.CLIENT,
        local_ufrag: str | None = None,
        local_password: str | None = None,
        certificate: DtlsCertificate | None = None,
        config: TransportConfig | None = None,
        now: float,
        outbox: Outbox | None = None,
        sink: EventSink | None = None,
    ) -> None:
        """``remote_*`` come from the router's SDP answer; ``random`` returns floats in [0, 1)
        (inject ``random.Random(seed).random`` for determinism)."""
        super().__init__(
            dtls_role=dtls_role,
            remote_fingerprint=remote_fingerprint,
            certificate=certificate,
            config=config,
            now=now,
            outbox=outbox,
            sink=sink,
        )
        self.remote_address = remote_address
        self.ice = IceControllingAgent(
            remote_ufrag=remote_ufrag,
            remote_password=remote_password,
            remote_address=remote_address,
            local_ufrag=local_ufrag,
            local_password=local_password,
            random=random,
            config=self.config,
        )

    @property
    def local_ufrag(self) -> str:
        """Our ``a=ice-ufrag`` for the offer."""
        return self.ice.local_ufrag

    @property
    def local_password(self) -> str:
        """Our ``a=ice-pwd`` for the offer."""
        return self.ice.local_password

    def connect(self, now: float) -> None:
        """Start ICE (and DTLS once ICE succeeds)."""
        self.ice.start(now)
        self._after_control(now)

    def can_send(self) -> bool:
        """Whether media can go out now."""
        return self._dest is not None and self.srtp is not None

    def _validated(self, addr: Address) -> bool:
        return addr == self.remote_address and self._dest is not None

    def _receive_stun(self, data: bytes, addr: Address, now: float) -> None:
        if addr != self.remote_address:
            self.ice.stats.unexpected += 1
            return
        self.ice.handle_stun(data, now)

    def _ice_timer(self) -> float | None:
        return self.ice.get_timer()

    def _handle_ice_timer(self, now: float) -> None:
        self.ice.handle_timer(now)

    def _control_destination(self) -> Address | None:
        return self.remote_address

    def _drain_ice(self, now: float) -> None:
        for request in self.ice.datagrams_to_send():
            self._out.append((request, self.remote_address))
        while (event := self.ice.next_event()) is not None:
            if isinstance(event, IceConnected):
                self._dest = self.remote_address
                self._emit(event)
                self._start_dtls(now)
            elif isinstance(event, ConsentLost):
                self._dest = None
                self._emit(event)
            elif isinstance(event, TransportClosed):
                self._finish(event.reason)
                return


__all__ = ["ClientTransport"]
