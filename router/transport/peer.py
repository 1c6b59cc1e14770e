"""Router side of one participant's transport: ICE-lite + DTLS + SRTP behind the house API.

The DTLS role comes from SDP (``setup:passive`` answering a browser's ``actpass`` is usual, so
the router waits for the ClientHello; ``active`` makes the router send it once ICE nominates a
path). Security rules enforced here, whoever routes datagrams to us:

* DTLS, RTP and RTCP are accepted only from an ICE-validated address (nominated with a valid,
  authenticated check whose consent is fresh); anything else is dropped and counted, so a
  ClientHello from an address that never passed ICE cannot race the real peer.
* SRTP keys exist only after the DTLS certificate matched the SDP fingerprint.
* When consent lapses we stop sending at once and close (:class:`ConsentLost`, then
  :class:`TransportClosed`): the session layer cleans the participant up on that event.

A forwarder uses it like this::

    peer.receive_datagram(data, addr, now)
    while (event := peer.next_event()) is not None:
        match event:
            case RtpReceived(packet): ...   # plain RTP: route it
    subscriber.send_rtp(rewritten)          # encrypts with the subscriber's keys, queues
    for datagram, addr in subscriber.datagrams_to_send(now): sock.sendto(datagram, addr)
"""

from __future__ import annotations

from router.transport.base import BaseTransport, EventSink, Outbox
from router.transport.certificate import DtlsCertificate, Fingerprint
from router.transport.config import TransportConfig
from router.transport.dtls import DtlsRole
from router.transport.events import Address, ConsentLost, IceConnected
from router.transport.ice_lite import IceLiteAgent


class PeerTransport(BaseTransport):
    """One participant on the router's UDP port."""

    def __init__(
        self,
        *,
        remote_ufrag: str,
        remote_password: str,
        remote_fingerprint: Fingerprint | str,
        dtls_role: DtlsRole = DtlsRole.SERVER,
        local_ufrag: str | None = None,
        local_password: str | None = None,
        certificate: DtlsCertificate | None = None,
        config: TransportConfig | None = None,
        now: float,
        outbox: Outbox | None = None,
        sink: EventSink | None = None,
    ) -> None:
        """``remote_*`` come from the peer's SDP; local credentials are generated unless given
        (put :attr:`local_ufrag`/:attr:`local_password` and the certificate fingerprint in the
        answer). ``now`` starts the connect timeout."""
        super().__init__(
            dtls_role=dtls_role,
            remote_fingerprint=remote_fingerprint,
            certificate=certificate,
            config=config,
            now=now,
            outbox=outbox,
            sink=sink,
        )
        self.ice = IceLiteAgent(
            local_ufrag=local_ufrag,
            local_password=local_password,
            remote_ufrag=remote_ufrag,
            remote_password=remote_password,
            config=self.config,
        )
        #: The addresses media is accepted from (ICE-nominated with fresh consent): the agent's
        #: own table, one object for the peer's lifetime, which the compiled ingest loop
        #: (router.transport.fastpath) checks as :meth:`_validated` does.
        self.media_sources: dict[Address, float] = self.ice.nominated

    @property
    def local_ufrag(self) -> str:
        """Our ``a=ice-ufrag`` (also the key a :class:`TransportMux` routes STUN by)."""
        return self.ice.local_ufrag

    @property
    def local_password(self) -> str:
        """Our ``a=ice-pwd``."""
        return self.ice.local_password

    @property
    def selected_address(self) -> Address | None:
        """Where media goes, if anywhere."""
        return self._dest

    def can_send(self, addr: Address) -> bool:
        """Whether we may send to ``addr`` now (validated, consent fresh, not closed)."""
        return self.closed_reason is None and self.ice.can_send(addr)

    def _validated(self, addr: Address) -> bool:
        return addr in self.media_sources

    def _receive_stun(self, data: bytes, addr: Address, now: float) -> None:
        response = self.ice.handle_stun(data, addr, now)
        if response is not None:
            self._out.append((response, addr))

    def _ice_timer(self) -> float | None:
        return self.ice.get_timer()

    def _handle_ice_timer(self, now: float) -> None:
        self.ice.handle_timer(now)

    def _control_destination(self) -> Address | None:
        return self.ice.selected

    def _drain_ice(self, now: float) -> None:
        while (event := self.ice.next_event()) is not None:
            if isinstance(event, IceConnected):
                self._dest = event.address
                self._emit(event)
                # Active role: the ClientHello goes out now. Passive: the handshake clock starts.
                self._start_dtls(now)
            elif isinstance(event, ConsentLost):
                self._dest = None
                self._emit(event)
                self._finish("ICE consent lost")
                return


__all__ = ["PeerTransport"]
