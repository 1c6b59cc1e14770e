"""DTLS 1.2 handshake core for DTLS-SRTP (RFC 5764, RFC 8842) over pyOpenSSL memory BIOs.

Why it looks like this:

* OpenSSL does the cryptography through memory BIOs: datagrams go in with ``bio_write`` and come
  out with ``bio_read``; nothing here touches a socket.
* Retransmission belongs to the core's timer, not OpenSSL's. OpenSSL keeps its DTLS timer on the
  wall clock, which a sans-IO core driven by an injected ``now`` cannot move. So when our timer
  fires we first let OpenSSL retransmit (``DTLSv1_handle_timeout``; with a real clock its timer
  has expired too and it re-sequences the flight properly), and if it declines we resend the
  last flight as it was. A verbatim copy whose original did arrive is discarded by the peer's
  replay check, which is harmless; a server whose final flight was lost resends it when the
  client retransmits (OpenSSL would not see the verbatim copy, so we do that part ourselves).
* Certificates are self-signed, so OpenSSL's chain verification is switched to accept-all and the
  real check is explicit: after the handshake and before any key is exported, the peer
  certificate's digest must equal the SDP fingerprint. A mismatch closes the session without keys.
* ``use_srtp`` offers AEAD_AES_128_GCM first; OpenSSL's server picks by its own preference order,
  so a router in the passive role chooses GCM whenever the browser offers it.
"""

from __future__ import annotations

import contextlib
from collections import deque
from enum import Enum
from typing import Any, Final, cast

from cryptography import x509
from OpenSSL import SSL

from router.transport.certificate import DtlsCertificate, Fingerprint
from router.transport.config import TransportConfig
from router.transport.events import DtlsConnected, TransportClosed, TransportEvent
from router.transport.srtp import (
    EXPORTER_LABEL,
    PROFILES_BY_NAME,
    SrtpProfile,
    exporter_length,
    split_keying_material,
)

_DTLS1_2_VERSION: Final = 0xFEFD
_CIPHERS: Final = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:"
    b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384"
)
_READ_SIZE: Final = 65536
#: DTLS content types of handshake traffic (change_cipher_spec, handshake).
_HANDSHAKE_TYPES: Final = frozenset({20, 22})


class DtlsRole(Enum):
    """Our DTLS role, from the SDP ``a=setup`` attribute (RFC 5763 §5)."""

    #: ``setup:active``: we send the ClientHello.
    CLIENT = "active"
    #: ``setup:passive``: we wait for the peer's ClientHello.
    SERVER = "passive"


class DtlsState(Enum):
    """Lifecycle of a :class:`DtlsCore`."""

    NEW = "new"
    HANDSHAKING = "handshaking"
    CONNECTED = "connected"
    CLOSED = "closed"


def _accept_any(conn: SSL.Connection, cert: object, errno: int, depth: int, ok: int) -> bool:
    """Verify callback: let the handshake finish; the SDP fingerprint check comes after."""
    return True


_contexts: dict[tuple[bytes, tuple[str, ...]], SSL.Context] = {}


def _context(certificate: DtlsCertificate, profiles: tuple[SrtpProfile, ...]) -> SSL.Context:
    """A shared OpenSSL context per certificate and profile list (contexts are costly).

    Keyed by the certificate's digest, not by the object's ``id()``: CPython reuses the id of
    a collected certificate for the next one, and a context found under a reused id presented
    the old certificate, so the peer refused the fingerprint (seen with short-lived clients).
    """
    key = (certificate.fingerprint.digest, tuple(p.name for p in profiles))
    ctx = _contexts.get(key)
    if ctx is None:
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.set_min_proto_version(_DTLS1_2_VERSION)
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _accept_any)
        # The types-pyOpenSSL stubs predate pyOpenSSL taking cryptography objects (24.0+), and
        # passing pyOpenSSL's own X509/PKey is deprecated: go through Any.
        untyped = cast(Any, ctx)
        untyped.use_certificate(certificate.certificate)
        untyped.use_privatekey(certificate.private_key)
        ctx.set_cipher_list(_CIPHERS)
        ctx.set_tlsext_use_srtp(":".join(p.name for p in profiles).encode())
        ctx.set_options(SSL.OP_NO_QUERY_MTU | SSL.OP_NO_TICKET)
        _contexts[key] = ctx
    return ctx


class DtlsCore:
    """One DTLS association. Feed datagrams in, take datagrams and events out.

    After :class:`~router.transport.events.DtlsConnected`, :attr:`srtp_keys` holds
    ``(profile, local_key, remote_key)``.
    """

    def __init__(
        self,
        certificate: DtlsCertificate,
        *,
        role: DtlsRole,
        remote_fingerprint: Fingerprint,
        config: TransportConfig | None = None,
        profiles: tuple[SrtpProfile, ...] | None = None,
    ) -> None:
        """``profiles`` overrides ``config.srtp_profiles`` (names of :data:`PROFILES`)."""
        self.role = role
        self.state = DtlsState.NEW
        self.srtp_keys: tuple[SrtpProfile, bytes, bytes] | None = None
        #: Datagrams from the peer that OpenSSL refused outright (counted, not fatal).
        self.rejected_datagrams = 0
        #: Application data records received (no data channels here: dropped).
        self.dropped_application_data = 0
        #: Retransmissions we made (OpenSSL's or verbatim).
        self.retransmissions = 0
        self._config = config or TransportConfig()
        if profiles is None:
            profiles = tuple(PROFILES_BY_NAME[name] for name in self._config.srtp_profiles)
        self._remote_fingerprint = remote_fingerprint
        self._conn = SSL.Connection(_context(certificate, profiles), None)
        self._conn.set_ciphertext_mtu(self._config.dtls_mtu)
        if role is DtlsRole.CLIENT:
            self._conn.set_connect_state()
        else:
            self._conn.set_accept_state()
        self._outgoing: list[bytes] = []
        self._events: deque[TransportEvent] = deque()
        self._flight: list[bytes] = []
        self._rto = self._config.dtls_initial_rto
        self._retransmit_at: float | None = None

    # -- API --------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin the handshake: a client sends its ClientHello, a server starts listening."""
        if self.state is not DtlsState.NEW:
            return
        self.state = DtlsState.HANDSHAKING
        if self.role is DtlsRole.CLIENT:
            self._handshake(now)

    def receive_datagram(self, data: bytes, now: float) -> None:
        """Feed one DTLS datagram from the (ICE-validated) peer."""
        if self.state is DtlsState.NEW:
            self.start(now)
        if self.state is DtlsState.CLOSED:
            return
        try:
            self._conn.bio_write(data)
        except SSL.Error:
            self.rejected_datagrams += 1
            return
        if self.state is DtlsState.HANDSHAKING:
            self._handshake(now)
        else:
            before = len(self._outgoing)
            self._read_records()
            if (
                self.state is DtlsState.CONNECTED
                and len(self._outgoing) == before
                and self.role is DtlsRole.SERVER
                and data[0] in _HANDSHAKE_TYPES
                and self._flight
            ):
                # The client is still retransmitting: our final flight was lost.
                self._outgoing.extend(self._flight)
                self.retransmissions += 1

    def datagrams_to_send(self) -> list[bytes]:
        """DTLS datagrams to send to the peer, oldest first."""
        out, self._outgoing = self._outgoing, []
        return out

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` must run next (a retransmission), or ``None``."""
        return self._retransmit_at if self.state is DtlsState.HANDSHAKING else None

    def handle_timer(self, now: float) -> None:
        """Retransmit the current flight if its timeout passed (doubling the timeout)."""
        at = self._retransmit_at
        if self.state is not DtlsState.HANDSHAKING or at is None or now < at:
            return
        try:
            self._conn.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._close(f"DTLS retransmission failed: {_describe(exc)}")
            return
        fresh = self._read_output()
        if fresh:
            self._flight = fresh
        self._outgoing.extend(self._flight)
        self.retransmissions += 1
        self._rto = min(self._rto * 2, self._config.dtls_max_rto)
        self._retransmit_at = now + self._rto

    def next_event(self) -> TransportEvent | None:
        """The next event (:class:`DtlsConnected` or :class:`TransportClosed`), or ``None``."""
        return self._events.popleft() if self._events else None

    def close(self, reason: str = "closed locally") -> None:
        """Send close_notify (if the handshake got far enough) and finish."""
        if self.state is DtlsState.CLOSED:
            return
        if self.state is not DtlsState.NEW:
            with contextlib.suppress(SSL.Error):
                self._conn.shutdown()
            self._outgoing.extend(self._read_output())
        self._close(reason)

    # -- internals --------------------------------------------------------------------------

    def _read_output(self) -> list[bytes]:
        out: list[bytes] = []
        while True:
            try:
                out.append(self._conn.bio_read(_READ_SIZE))
            except SSL.WantReadError:
                return out
            except SSL.Error:
                return out

    def _handshake(self, now: float) -> None:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            flight = self._read_output()
            if flight:
                self._new_flight(flight, now)
            return
        except SSL.Error as exc:
            self._outgoing.extend(self._read_output())
            self._close(f"DTLS handshake failed: {_describe(exc)}")
            return
        flight = self._read_output()
        if flight:
            self._outgoing.extend(flight)
            self._flight = flight
        self._retransmit_at = None
        self._handshake_done()
        if self.state is DtlsState.CONNECTED:
            self._read_records()

    def _new_flight(self, flight: list[bytes], now: float) -> None:
        self._outgoing.extend(flight)
        self._flight = flight
        self._rto = self._config.dtls_initial_rto
        self._retransmit_at = now + self._rto

    def _handshake_done(self) -> None:
        cert: x509.Certificate | None = cast(Any, self._conn).get_peer_certificate(
            as_cryptography=True
        )
        if cert is None or not self._remote_fingerprint.matches(cert):
            self.close("DTLS certificate does not match the SDP fingerprint")
            return
        profile = PROFILES_BY_NAME.get(self._conn.get_selected_srtp_profile().decode("ascii"))
        if profile is None:
            self.close("DTLS negotiated no supported SRTP profile")
            return
        try:
            material = bytes(
                self._conn.export_keying_material(EXPORTER_LABEL, exporter_length(profile))
            )
        except SSL.Error as exc:
            self.close(f"DTLS key export failed: {_describe(exc)}")
            return
        local, remote = split_keying_material(
            material, profile, is_client=self.role is DtlsRole.CLIENT
        )
        self.srtp_keys = (profile, local, remote)
        self.state = DtlsState.CONNECTED
        self._events.append(DtlsConnected(profile.name))

    def _read_records(self) -> None:
        """Drain decrypted records: detect close_notify and alerts, drop application data."""
        while self.state is DtlsState.CONNECTED:
            try:
                self._conn.recv(_READ_SIZE)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._close("DTLS close_notify from peer")
                break
            except SSL.Error as exc:
                self._close(f"DTLS fatal alert or error: {_describe(exc)}")
                break
            else:
                self.dropped_application_data += 1
        self._outgoing.extend(self._read_output())

    def _close(self, reason: str) -> None:
        if self.state is DtlsState.CLOSED:
            return
        self.state = DtlsState.CLOSED
        self._retransmit_at = None
        self._flight = []
        self._events.append(TransportClosed(reason))


def _describe(exc: SSL.Error) -> str:
    """A short, address-free description of an OpenSSL error for logs."""
    args = exc.args[0] if exc.args else None
    if isinstance(args, list) and args and isinstance(args[0], tuple) and len(args[0]) >= 3:
        return str(args[0][2])
    return type(exc).__name__


__all__ = ["DtlsCore", "DtlsRole", "DtlsState"]
