"""What the router-side :class:`PeerTransport` and the client-side :class:`ClientTransport`
share: demux, DTLS, SRTP, the event queue and the per-packet paths.

The per-packet paths are written for the forwarder's budget: ``receive_datagram`` classifies by
one table lookup, checks the source address with one dict lookup, decrypts, and appends one
event holding the decrypted bytes; ``send_rtp`` encrypts and appends one ``(bytes, address)``
tuple. Everything rarer (STUN, DTLS, timers) goes through the slower, clearer code.

The outgoing list and the event sink can be shared: a :class:`TransportMux` hands every peer its
own output list and event deque, so it drains one list for the whole port.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from router.transport.certificate import DtlsCertificate, Fingerprint, process_certificate
from router.transport.config import TransportConfig
from router.transport.demux import PacketKind, classify
from router.transport.dtls import DtlsCore, DtlsRole, DtlsState
from router.transport.events import (
    Address,
    DtlsConnected,
    RtcpReceived,
    RtpReceived,
    TransportClosed,
    TransportEvent,
)
from router.transport.srtp import SrtpContext, SrtpStats

_STUN = int(PacketKind.STUN)
_DTLS = int(PacketKind.DTLS)
_RTP = int(PacketKind.RTP)
_RTCP = int(PacketKind.RTCP)

Outbox = list[tuple[bytes, Address]]
EventSink = deque[tuple["BaseTransport", TransportEvent]]
RtpHandler = Callable[["BaseTransport", bytes, float], None]


@dataclass(slots=True)
class TransportStats:
    """Per-peer drop counters outside SRTP (which has :class:`SrtpStats`)."""

    #: Datagrams that are none of STUN, DTLS, RTP, RTCP (RFC 7983), or too short.
    dropped_unknown_kind: int = 0
    #: DTLS, RTP or RTCP from an address ICE has not validated.
    dropped_unvalidated: int = 0
    #: RTP or RTCP that arrived before DTLS produced SRTP keys.
    dropped_before_keys: int = 0
    #: Datagrams received after the transport closed.
    dropped_closed: int = 0
    #: Packets the caller asked us to send while we could not (no keys, no consent, closed).
    send_refused: int = 0


class BaseTransport:
    """Shared machinery; use :class:`PeerTransport` or :class:`ClientTransport`."""

    def __init__(
        self,
        *,
        dtls_role: DtlsRole,
        remote_fingerprint: Fingerprint | str,
        certificate: DtlsCertificate | None,
        config: TransportConfig | None,
        now: float,
        outbox: Outbox | None,
        sink: EventSink | None,
    ) -> None:
        self.config = config or TransportConfig()
        if isinstance(remote_fingerprint, str):
            remote_fingerprint = Fingerprint.parse(remote_fingerprint)
        self.certificate = certificate or process_certificate()
        self.dtls = DtlsCore(
            self.certificate,
            role=dtls_role,
            remote_fingerprint=remote_fingerprint,
            config=self.config,
        )
        self.stats = TransportStats()
        #: SRTP context, once DTLS is connected.
        self.srtp: SrtpContext | None = None
        #: Reason of :class:`TransportClosed`, once closed.
        self.closed_reason: str | None = None
        self._out: Outbox = [] if outbox is None else outbox
        self._events: deque[TransportEvent] = deque()
        self._sink = sink
        #: ``(transport, plain RTP, now)``: when set, decrypted RTP goes straight here instead
        #: of becoming an :class:`RtpReceived` event (the media path's one event per packet:
        #: its object, queueing and dispatch were ~1.5 µs of the router's per-packet work).
        #: Other events keep their queue, in order among themselves.
        self.rtp_handler: RtpHandler | None = None
        #: Where media goes now; ``None`` while we may not send (no path, no consent, closed).
        self._dest: Address | None = None
        self._connect_deadline: float | None = now + self.config.connect_timeout

    # -- house API ----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether :class:`TransportClosed` was emitted."""
        return self.closed_reason is not None

    @property
    def srtp_stats(self) -> SrtpStats | None:
        """SRTP counters (auth failures, replays, ...) once keys exist."""
        return None if self.srtp is None else self.srtp.stats

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Feed one UDP datagram received from ``addr``."""
        kind = classify(data)
        if kind in (_RTP, _RTCP):
            self.receive_media(data, addr, kind == _RTCP, now)  # checks closed itself
            return
        if self.closed_reason is not None:
            self.stats.dropped_closed += 1
            return
        if kind == _STUN:
            self._receive_stun(data, addr, now)
            self._after_control(now)
        elif kind == _DTLS:
            if not self._validated(addr):
                self.stats.dropped_unvalidated += 1
                return
            self.dtls.receive_datagram(data, now)
            self._after_control(now)
        else:
            self.stats.dropped_unknown_kind += 1

    def receive_media(self, data: bytes, addr: Address, is_rtcp: bool, now: float) -> None:
        """Feed one SRTP (or SRTCP) datagram already classified as such (RFC 7983: the mux
        has looked at its first bytes, so this skips classifying it again)."""
        if self.closed_reason is not None:
            self.stats.dropped_closed += 1
            return
        if not self._validated(addr):
            self.stats.dropped_unvalidated += 1
            return
        srtp = self.srtp
        if srtp is None:
            self.stats.dropped_before_keys += 1
            return
        if is_rtcp:
            plain = srtp.unprotect_rtcp(data)
            if plain is not None:
                self._emit(RtcpReceived(plain))
            return
        plain = srtp.unprotect_rtp(data)
        if plain is not None:
            handler = self.rtp_handler
            if handler is None:
                self._emit(RtpReceived(plain))
            else:
                handler(self, plain, now)

    def send_rtp(self, packet: bytes) -> bool:
        """Encrypt a plain RTP packet and queue it; ``False`` if it was not sent (counted)."""
        dest = self._dest
        srtp = self.srtp
        if dest is None or srtp is None:
            self.stats.send_refused += 1
            return False
        protected = srtp.protect_rtp(packet)
        if protected is None:
            return False
        self._out.append((protected, dest))
        return True

    def send_rtp_batch(self, packets: list[bytes]) -> int:
        """:meth:`send_rtp` for several packets in order (the forwarder's per-batch fan-out);
        returns how many were queued. One destination check and one SRTP call setup per batch."""
        dest = self._dest
        srtp = self.srtp
        if dest is None or srtp is None:
            self.stats.send_refused += len(packets)
            return 0
        return srtp.protect_rtp_batch(packets, dest, self._out)

    def send_rtcp(self, packet: bytes) -> bool:
        """Encrypt a plain RTCP compound packet and queue it; ``False`` if not sent (counted)."""
        dest = self._dest
        srtp = self.srtp
        if dest is None or srtp is None:
            self.stats.send_refused += 1
            return False
        protected = srtp.protect_rtcp(packet)
        if protected is None:
            return False
        self._out.append((protected, dest))
        return True

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Everything queued for the socket, as ``(datagram, address)``, oldest first."""
        out = self._out[:]
        self._out.clear()
        return out

    def next_event(self) -> TransportEvent | None:
        """The next event, or ``None``. (With a mux, events go to the mux instead.)"""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The earliest deadline of ICE, DTLS and the connect timeout, or ``None``."""
        if self.closed_reason is not None:
            return None
        best = self._connect_deadline
        for t in (self._ice_timer(), self.dtls.get_timer()):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def handle_timer(self, now: float) -> None:
        """Run whatever deadline has passed."""
        if self.closed_reason is not None:
            return
        if self._connect_deadline is not None and now >= self._connect_deadline:
            self.close("ICE and DTLS did not complete in time")
            return
        self._handle_ice_timer(now)
        self.dtls.handle_timer(now)
        self._after_control(now)

    def close(self, reason: str = "closed locally") -> None:
        """Send DTLS close_notify if connected, emit :class:`TransportClosed`, stop everything."""
        if self.closed_reason is not None:
            return
        dest = self._dest or self._control_destination()
        self.dtls.close(reason)
        if dest is not None:
            self._out.extend((d, dest) for d in self.dtls.datagrams_to_send())
        self._drain_dtls_events()
        self._finish(reason)

    # -- subclass hooks -----------------------------------------------------------------------

    def _validated(self, addr: Address) -> bool:
        raise NotImplementedError

    def _receive_stun(self, data: bytes, addr: Address, now: float) -> None:
        raise NotImplementedError

    def _ice_timer(self) -> float | None:
        raise NotImplementedError

    def _handle_ice_timer(self, now: float) -> None:
        raise NotImplementedError

    def _control_destination(self) -> Address | None:
        """Where STUN-independent control traffic (DTLS) goes now."""
        raise NotImplementedError

    def _drain_ice(self, now: float) -> None:
        raise NotImplementedError

    # -- shared internals ---------------------------------------------------------------------

    def _emit(self, event: TransportEvent) -> None:
        if self._sink is None:
            self._events.append(event)
        else:
            self._sink.append((self, event))

    def _after_control(self, now: float) -> None:
        """After STUN, DTLS or a timer: move ICE events, DTLS output and DTLS events along."""
        self._drain_ice(now)
        if self.closed_reason is not None:
            return
        out = self.dtls.datagrams_to_send()
        if out:
            dest = self._control_destination()
            if dest is not None:
                self._out.extend((d, dest) for d in out)
        self._drain_dtls_events()

    def _drain_dtls_events(self) -> None:
        while (event := self.dtls.next_event()) is not None:
            if isinstance(event, DtlsConnected):
                keys = self.dtls.srtp_keys
                if keys is None:  # pragma: no cover - DtlsCore sets keys before the event
                    continue
                profile, local, remote = keys
                self.srtp = SrtpContext(
                    profile, local, remote, replay_window=self.config.srtp_replay_window
                )
                self._connect_deadline = None
                self._emit(event)
            elif isinstance(event, TransportClosed):
                self._finish(event.reason)

    def _start_dtls(self, now: float) -> None:
        if self.dtls.state is DtlsState.NEW:
            self.dtls.start(now)

    def _finish(self, reason: str) -> None:
        if self.closed_reason is not None:
            return
        if self.dtls.state is not DtlsState.CLOSED:
            self.dtls.close(reason)
            self.dtls.datagrams_to_send()
            while self.dtls.next_event() is not None:
                pass
        self.closed_reason = reason
        self._dest = None
        self._connect_deadline = None
        self._emit(TransportClosed(reason))


__all__ = ["BaseTransport", "EventSink", "Outbox", "RtpHandler", "TransportStats"]
