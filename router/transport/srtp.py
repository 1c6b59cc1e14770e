"""SRTP/SRTCP contexts over pylibsrtp: one inbound and one outbound libsrtp session per peer.

Why the wrapper: libsrtp reports every failure as an exception, and a forged or replayed packet
is routine traffic that must end as a counter, never as an exception out of the core. It also
checks minimum lengths before libsrtp sees a packet (libsrtp once read past short SRTCP packets;
see REFERENCES.md) and maximum lengths (pylibsrtp works in a fixed 1500-byte buffer).

Both sessions use wildcard SSRC policies (``SSRC_ANY_INBOUND`` / ``SSRC_ANY_OUTBOUND``): libsrtp
clones a stream context the first time it sees an SSRC, so a forwarder can start sending a new
track to a subscriber without renegotiating anything here, and a publisher can add simulcast
layers. Inbound clones are made only after a packet authenticates, so forged SSRCs cost nothing.
:meth:`SrtpContext.remove_outbound_ssrc` frees a stream when a track stops.

Per-call cost: pylibsrtp's ``Session.protect`` allocates an ``int *`` per call, re-checks types
and turns every failure into an exception whose message the caller must compare. The fast path
(:mod:`router.transport.srtp_direct`) calls the same libsrtp functions through pylibsrtp's own
cffi binding with buffers allocated once per context and maps return codes to counters with one
dict lookup; it saves about 0.5 µs per packet. Without that binding the public API is used.

Keys come from the DTLS exporter (RFC 5764 §4.2): ``client_key | server_key | client_salt |
server_salt``; the DTLS client writes with the client half.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import pylibsrtp

from router.transport import fastpath, srtp_direct
from router.transport.events import Address

Datagram = tuple[bytes, Address]


@dataclass(frozen=True, slots=True)
class SrtpProfile:
    """A DTLS-SRTP protection profile and the sizes that go with it."""

    #: Name as OpenSSL and RFC 5764/7714 spell it (``use_srtp`` extension).
    name: str
    #: pylibsrtp profile constant.
    libsrtp_id: int
    #: Master key length in bytes.
    key_length: int
    #: Master salt length in bytes.
    salt_length: int
    #: Authentication tag appended to SRTP and SRTCP packets.
    tag_length: int


AEAD_AES_128_GCM: Final = SrtpProfile(
    "SRTP_AEAD_AES_128_GCM", pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16, 12, 16
)
AES128_CM_SHA1_80: Final = SrtpProfile(
    "SRTP_AES128_CM_SHA1_80", pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 16, 14, 10
)
#: Supported profiles, most preferred first: GCM is about 2.4x cheaper in libsrtp (REFERENCES.md).
PROFILES: Final = (AEAD_AES_128_GCM, AES128_CM_SHA1_80)
PROFILES_BY_NAME: Final = {p.name: p for p in PROFILES}
#: The label RFC 5764 §4.2 gives the TLS exporter.
EXPORTER_LABEL: Final = b"EXTRACTOR-dtls_srtp"

_RTP_HEADER: Final = 12
_RTCP_HEADER: Final = 8
_SRTCP_INDEX: Final = 4
#: pylibsrtp copies every packet into a 1500-byte buffer and needs room for the trailer.
_BUFFER: Final = 1500
_MAX_PROTECT_RTP: Final = _BUFFER - pylibsrtp.SRTP_MAX_TRAILER_LEN
_MAX_PROTECT_RTCP: Final = _BUFFER - pylibsrtp.SRTP_MAX_SRTCP_TRAILER_LEN
_TRAILER: Final = pylibsrtp.SRTP_MAX_TRAILER_LEN
#: libsrtp's refusals that mean "not authentic": a bad tag, an AEAD tag failing inside the cipher,
#: or an SRTCP packet claiming to be unencrypted where our policy encrypts ("cannot check").
_AUTH_ERRORS: Final = frozenset(
    {"authentication failure", "cipher failure", "unable to perform desired validation"}
)
_AUTH: Final = "auth"
_REPLAY: Final = "replay"
#: The same classification by libsrtp status code, for the direct path.
_STATUS_KIND: Final = {
    srtp_direct.AUTH_FAIL: _AUTH,
    srtp_direct.CIPHER_FAIL: _AUTH,
    srtp_direct.CANT_CHECK: _AUTH,
    srtp_direct.REPLAY_FAIL: _REPLAY,
    srtp_direct.REPLAY_OLD: _REPLAY,
    srtp_direct.PKT_IDX_OLD: _REPLAY,
}
_REPLAY_ERRORS: Final = frozenset(
    {
        "replay check failed (bad index)",
        "replay check failed (index too old)",
        "packet index is too old to consider",
    }
)


def exporter_length(profile: SrtpProfile) -> int:
    """How many bytes to export for ``profile``: two keys and two salts."""
    return 2 * (profile.key_length + profile.salt_length)


def split_keying_material(
    material: bytes, profile: SrtpProfile, *, is_client: bool
) -> tuple[bytes, bytes]:
    """``(local_key_and_salt, remote_key_and_salt)`` from exported material (RFC 5764 §4.2)."""
    k, s = profile.key_length, profile.salt_length
    if len(material) != 2 * (k + s):
        raise ValueError(f"keying material is {len(material)} bytes, expected {2 * (k + s)}")
    client_key, server_key = material[:k], material[k : 2 * k]
    client_salt, server_salt = material[2 * k : 2 * k + s], material[2 * k + s :]
    client, server = client_key + client_salt, server_key + server_salt
    return (client, server) if is_client else (server, client)


@dataclass(slots=True)
class SrtpStats:
    """Counters of one SRTP context; each drop reason has its own counter."""

    rtp_in: int = 0
    rtcp_in: int = 0
    rtp_out: int = 0
    rtcp_out: int = 0
    #: Packets whose authentication tag (HMAC or GCM) did not verify.
    auth_failures: int = 0
    #: Packets whose index was already seen or is older than the replay window.
    replay_failures: int = 0
    #: Packets too short to carry a header and tag, or too long for the buffer.
    bad_length: int = 0
    #: Any other libsrtp refusal (unexpected; kept separate so it is noticed).
    other_failures: int = 0
    #: Outbound packets we could not protect (too long, or a libsrtp error).
    protect_failures: int = 0


class SrtpContext:
    """Protects what we send and unprotects what we receive for one peer.

    Every method returns ``None`` on failure after counting it in :attr:`stats`; nothing raises.
    With the direct libsrtp path (:mod:`router.transport.srtp_direct`), the per-packet methods
    call libsrtp inline; otherwise they go through pylibsrtp's public API.
    """

    __slots__ = (
        "_in",
        "_inbound",
        "_min_rtcp",
        "_min_rtp",
        "_out",
        "_outbound",
        "_protect_batch",
        "ingest_route",
        "profile",
        "protect_route",
        "stats",
    )

    def __init__(
        self,
        profile: SrtpProfile,
        local_key: bytes,
        remote_key: bytes,
        *,
        replay_window: int = 1024,
        direct: bool | None = None,
        fast: bool | None = None,
    ) -> None:
        """``local_key``/``remote_key`` are master key plus salt for each direction; ``direct``
        forces (True) or avoids (False) the direct libsrtp path, default: when available;
        ``fast`` likewise the compiled batch loop (router.transport.fastpath), which needs the
        direct path."""
        if not 64 <= replay_window < 0x8000:
            raise ValueError(f"SRTP replay window {replay_window} must be in 64..32767")
        self.profile = profile
        self.stats = SrtpStats()
        self._min_rtp = _RTP_HEADER + profile.tag_length
        self._min_rtcp = _RTCP_HEADER + _SRTCP_INDEX + profile.tag_length
        inbound = pylibsrtp.Policy(
            key=remote_key,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=profile.libsrtp_id,
        )
        inbound.window_size = replay_window
        outbound = pylibsrtp.Policy(
            key=local_key,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=profile.libsrtp_id,
        )
        outbound.window_size = replay_window
        # Serving a NACK resends a packet with the same sequence number on the same SSRC.
        outbound.allow_repeat_tx = True
        self._inbound = pylibsrtp.Session(inbound)
        self._outbound = pylibsrtp.Session(outbound)
        use_direct = srtp_direct.available() if direct is None else direct
        self._in = srtp_direct.DirectSession(self._inbound) if use_direct else None
        self._out = srtp_direct.DirectSession(self._outbound) if use_direct else None
        use_fast = fastpath.enabled() and self._out is not None if fast is None else fast
        if use_fast and self._out is None:
            raise ValueError("the compiled fast path needs the direct libsrtp path")
        # The compiled loop itself, not fastpath.protect_batch: that wrapper's two Python frames
        # cost as much as the loop when a batch holds one packet (most batches at ~9,000 pps).
        self._protect_batch: Any = fastpath.compiled().protect_batch if use_fast else None
        #: What the compiled ingest loop (router.transport.fastpath, ``ingest``) needs to do
        #: :meth:`unprotect_rtp`'s work on this context, or None where it must call that method:
        #: ``(srtp_unprotect address, session address, min length, max length, stats,
        #: count_status)``. The loop counts ``rtp_in`` on success and calls ``count_status`` with
        #: libsrtp's status on a refusal; a bad length it leaves to :meth:`unprotect_rtp`.
        self.ingest_route: tuple[int, int, int, int, SrtpStats, Callable[[int], None]] | None = (
            (self._in.unprotect_address, self._in.srtp_address, self._min_rtp, _BUFFER,
             self.stats, self._count_status)
            if use_fast and self._in is not None
            else None
        )  # fmt: skip
        #: What the compiled flush (router.transport.fastpath, ``protect_copies``) needs to do
        #: :meth:`protect_rtp_batch`'s work on this context, or None where it must call that
        #: method: ``(srtp_protect address, session address, max length, trailer, stats)``.
        self.protect_route: tuple[int, int, int, int, SrtpStats] | None = (
            (self._out.protect_address, self._out.srtp_address, _MAX_PROTECT_RTP, _TRAILER,
             self.stats)
            if use_fast and self._out is not None
            else None
        )  # fmt: skip

    @property
    def fast(self) -> bool:
        """Whether :meth:`protect_rtp_batch` runs the compiled loop."""
        return self._protect_batch is not None

    @property
    def direct(self) -> bool:
        """Whether libsrtp is called directly (see :mod:`router.transport.srtp_direct`)."""
        return self._out is not None

    def _count_failure(self, exc: pylibsrtp.Error) -> None:
        message = str(exc)
        if message in _AUTH_ERRORS:
            self.stats.auth_failures += 1
        elif message in _REPLAY_ERRORS:
            self.stats.replay_failures += 1
        else:
            self.stats.other_failures += 1

    def _count_status(self, status: int) -> None:
        kind = _STATUS_KIND.get(status)
        if kind is _AUTH:
            self.stats.auth_failures += 1
        elif kind is _REPLAY:
            self.stats.replay_failures += 1
        else:
            self.stats.other_failures += 1

    def unprotect_rtp(self, data: bytes) -> bytes | None:
        """Plain RTP from an SRTP packet, or ``None`` (counted) if it fails any check."""
        n = len(data)
        if n < self._min_rtp or n > _BUFFER:
            self.stats.bad_length += 1
            return None
        d = self._in
        if d is not None:
            length = d.length
            length[0] = n
            d.buffer[0:n] = data
            status = d.unprotect(d.srtp, d.cdata, length)
            if status:
                self._count_status(status)
                return None
            self.stats.rtp_in += 1
            return d.buffer[0 : length[0]]  # type: ignore[no-any-return]
        try:
            plain = self._inbound.unprotect(data)
        except pylibsrtp.Error as exc:
            self._count_failure(exc)
            return None
        self.stats.rtp_in += 1
        return plain

    def unprotect_rtcp(self, data: bytes) -> bytes | None:
        """Plain RTCP from an SRTCP packet, or ``None`` (counted)."""
        n = len(data)
        if n < self._min_rtcp or n > _BUFFER:
            self.stats.bad_length += 1
            return None
        d = self._in
        if d is not None:
            status, plain = d.call(d.unprotect_rtcp, data)
            if plain is None:
                self._count_status(status)
                return None
        else:
            try:
                plain = self._inbound.unprotect_rtcp(data)
            except pylibsrtp.Error as exc:
                self._count_failure(exc)
                return None
        self.stats.rtcp_in += 1
        return plain

    def protect_rtp(self, packet: bytes) -> bytes | None:
        """SRTP bytes for a plain RTP packet, or ``None`` (counted) if it cannot be protected."""
        n = len(packet)
        if not _RTP_HEADER <= n <= _MAX_PROTECT_RTP:
            self.stats.protect_failures += 1
            return None
        d = self._out
        if d is not None:
            length = d.length
            length[0] = n
            d.buffer[0:n] = packet
            if d.protect(d.srtp, d.cdata, length):
                self.stats.protect_failures += 1
                return None
            self.stats.rtp_out += 1
            return d.buffer[0 : length[0]]  # type: ignore[no-any-return]
        try:
            protected = self._outbound.protect(packet)
        except pylibsrtp.Error:
            self.stats.protect_failures += 1
            return None
        self.stats.rtp_out += 1
        return protected

    def protect_rtp_batch(self, packets: list[bytes], dest: Address, out: list[Datagram]) -> int:
        """Protect every packet in order and append ``(srtp, dest)`` to ``out``; returns how many.

        The forwarder's fan-out path: one call per subscriber per batch instead of per packet,
        the stats updated once. Failures are counted as in :meth:`protect_rtp`.
        """
        d = self._out
        protect_batch = self._protect_batch
        if protect_batch is not None and d is not None:
            failed: int = protect_batch(d.protect_address, d.srtp_address, packets,
                                        _MAX_PROTECT_RTP, _TRAILER, dest, out)
            sent = len(packets) - failed
            self.stats.rtp_out += sent
            self.stats.protect_failures += failed
            return sent
        if d is None:
            sent = 0
            for packet in packets:
                protected = self.protect_rtp(packet)
                if protected is not None:
                    out.append((protected, dest))
                    sent += 1
            return sent
        length, buffer, cdata, srtp, protect = d.length, d.buffer, d.cdata, d.srtp, d.protect
        append = out.append
        failed = 0
        for packet in packets:
            n = len(packet)
            if not _RTP_HEADER <= n <= _MAX_PROTECT_RTP:
                failed += 1
                continue
            length[0] = n
            buffer[0:n] = packet
            if protect(srtp, cdata, length):
                failed += 1
                continue
            append((buffer[0 : length[0]], dest))
        sent = len(packets) - failed
        self.stats.rtp_out += sent
        self.stats.protect_failures += failed
        return sent

    def protect_rtcp(self, packet: bytes) -> bytes | None:
        """SRTCP bytes for a plain RTCP compound packet, or ``None`` (counted)."""
        if not _RTCP_HEADER <= len(packet) <= _MAX_PROTECT_RTCP:
            self.stats.protect_failures += 1
            return None
        d = self._out
        if d is not None:
            _status, protected = d.call(d.protect_rtcp, packet)
            if protected is None:
                self.stats.protect_failures += 1
                return None
        else:
            try:
                protected = self._outbound.protect_rtcp(packet)
            except pylibsrtp.Error:
                self.stats.protect_failures += 1
                return None
        self.stats.rtcp_out += 1
        return protected

    def remove_outbound_ssrc(self, ssrc: int) -> bool:
        """Free the outbound stream state of ``ssrc`` (a track we stopped sending).

        Returns whether a stream existed. A later packet on that SSRC starts a fresh stream.
        """
        try:
            self._outbound.remove_stream(ssrc)
        except pylibsrtp.Error:
            return False
        return True


__all__ = [
    "AEAD_AES_128_GCM",
    "AES128_CM_SHA1_80",
    "EXPORTER_LABEL",
    "PROFILES",
    "PROFILES_BY_NAME",
    "SrtpContext",
    "SrtpProfile",
    "SrtpStats",
    "exporter_length",
    "split_keying_material",
]
