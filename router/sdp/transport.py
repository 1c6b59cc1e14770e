"""ICE-lite and DTLS parameters on both sides of a negotiation.

:class:`LocalTransportParams` is what the router's transport core hands to the SDP layer (its
ICE credentials, certificate fingerprint, UDP address); :class:`RemoteTransport` is what the SDP
layer hands back to the transport core for a participant (credentials to check STUN against,
the fingerprint the DTLS certificate must match, and the DTLS role the ``setup`` exchange gave us).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from typing import Final

from router.sdp.attributes import Fingerprint, Setup
from router.sdp.candidate import Candidate
from router.sdp.description import MediaInfo, SessionInfo
from router.sdp.errors import SdpError, SdpUsageError
from router.sdp.model import Attribute

__all__ = [
    "DtlsRole",
    "LocalTransportParams",
    "RemoteTransport",
    "answer_setup",
    "remote_transport",
]

_ICE_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/")


def _ice_chars(text: str) -> bool:
    return all(ch in _ICE_CHARS for ch in text)


class DtlsRole(enum.StrEnum):
    """Our DTLS role: ``client`` sends the ClientHello (setup:active), ``server`` waits."""

    CLIENT = "client"
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class LocalTransportParams:
    """The router's side of the transport, as the transport core knows it."""

    ice_ufrag: str
    """ICE username fragment, 4-256 ice-chars (RFC 8839 §5.4); unique per participant session."""
    ice_pwd: str
    """ICE password, 22-256 ice-chars; the MESSAGE-INTEGRITY key for STUN checks."""
    fingerprint: Fingerprint
    """Digest of the router's DTLS certificate (sha-256 expected by browsers)."""
    candidates: tuple[Candidate, ...] = ()
    """Host candidates of the router's UDP port (see :func:`router.sdp.host_candidate`)."""
    answer_setup: Setup = Setup.PASSIVE
    """Our ``a=setup`` for an ``actpass`` offer: passive, so browsers start DTLS (RFC 8842)."""
    session_id: str | None = None
    """``o=`` session id; None derives a stable one from the ufrag (no randomness needed here)."""

    def __post_init__(self) -> None:
        if not 4 <= len(self.ice_ufrag) <= 256 or not _ice_chars(self.ice_ufrag):
            raise SdpUsageError("ice_ufrag must be 4-256 ICE characters (RFC 8839 §5.4)")
        if not 22 <= len(self.ice_pwd) <= 256 or not _ice_chars(self.ice_pwd):
            raise SdpUsageError("ice_pwd must be 22-256 ICE characters (RFC 8839 §5.4)")
        if self.answer_setup not in (Setup.PASSIVE, Setup.ACTIVE):
            raise SdpUsageError("answer_setup must be passive or active")

    def origin_session_id(self) -> str:
        """The ``o=`` session id (explicit, or a hash of the ufrag below 2**62)."""
        if self.session_id is not None:
            return self.session_id
        digest = hashlib.sha256(self.ice_ufrag.encode()).digest()
        return str(int.from_bytes(digest[:8], "big") >> 2)

    def connection(self) -> tuple[str, int]:
        """Default address and port for ``c=``/``m=`` lines (RFC 8839 §4.2.1.2): first candidate."""
        if not self.candidates:
            return "0.0.0.0", 9
        first = self.candidates[0]
        return first.address, first.port

    def connection_field(self) -> tuple[str, str]:
        """The ``c=`` field for an accepted section."""
        address = self.connection()[0]
        family = "IP6" if ":" in address else "IP4"
        return ("c", f"IN {family} {address}")

    def transport_attributes(self, setup: Setup) -> list[Attribute]:
        """ice-ufrag, ice-pwd, fingerprint and setup lines for one accepted section."""
        return [
            Attribute("ice-ufrag", self.ice_ufrag),
            Attribute("ice-pwd", self.ice_pwd),
            Attribute("fingerprint", self.fingerprint.value()),
            Attribute("setup", setup.value),
        ]

    def candidate_attributes(self) -> list[Attribute]:
        """Candidates then ``end-of-candidates``: an ICE-lite agent gathers nothing later."""
        lines = [Attribute("candidate", c.value()) for c in self.candidates]
        return [*lines, Attribute("end-of-candidates")]


@dataclass(frozen=True, slots=True)
class RemoteTransport:
    """The peer's transport parameters and the DTLS role we must take."""

    ice_ufrag: str
    ice_pwd: str
    fingerprints: tuple[Fingerprint, ...]
    setup: Setup
    dtls_role: DtlsRole
    ice_options: tuple[str, ...] = ()
    candidates: tuple[Candidate, ...] = ()


def answer_setup(offered: Setup | None, preferred: Setup, line: int) -> Setup:
    """Our ``setup`` in an answer (RFC 8842 §5.3); an absent offer value means ``active``."""
    if offered is None or offered is Setup.ACTIVE:
        return Setup.PASSIVE
    if offered is Setup.PASSIVE:
        return Setup.ACTIVE
    if offered is Setup.ACTPASS:
        return preferred
    raise SdpError("a=setup:holdconn offers no DTLS connection", line)


def remote_transport(
    session: SessionInfo, media: MediaInfo, *, our_setup: Setup | None, is_offer: bool
) -> RemoteTransport:
    """Remote ICE/DTLS parameters from the BUNDLE-tagged section (or the only one).

    ``our_setup`` is the role we wrote (for an answer we build) or None when reading an answer
    to our ``actpass`` offer, where the peer's ``setup`` decides.
    """
    t = media.transport
    where = f"m-section at line {media.line} (mid {media.mid!r})"
    if session.ice_lite:
        raise SdpError(f"the peer is ICE-lite too, so no side would check connectivity ({where})")
    if t.ice_ufrag is None or t.ice_pwd is None:
        raise SdpError(f"{where} has no a=ice-ufrag/a=ice-pwd", media.line)
    if not t.fingerprints:
        raise SdpError(f"{where} has no a=fingerprint: DTLS could not be authenticated", media.line)
    if not (4 <= len(t.ice_ufrag) <= 256 and 22 <= len(t.ice_pwd) <= 256):
        raise SdpError(f"{where} has an ICE ufrag or password of bad length", media.line)
    if not (_ice_chars(t.ice_ufrag) and _ice_chars(t.ice_pwd)):
        raise SdpError(f"{where} has non-ICE characters in its ufrag or password", media.line)
    setup = t.setup if t.setup is not None else Setup.ACTIVE
    if our_setup is not None:
        role = DtlsRole.CLIENT if our_setup is Setup.ACTIVE else DtlsRole.SERVER
    elif is_offer or setup not in (Setup.ACTIVE, Setup.PASSIVE):
        raise SdpError(f"{where}: an answer's a=setup must be active or passive", media.line)
    else:
        role = DtlsRole.SERVER if setup is Setup.ACTIVE else DtlsRole.CLIENT
    return RemoteTransport(
        t.ice_ufrag, t.ice_pwd, t.fingerprints, setup, role, t.ice_options, t.candidates
    )
