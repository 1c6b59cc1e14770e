"""libsrtp called through pylibsrtp's cffi binding, without its per-call wrapper.

Why: :class:`pylibsrtp.Session` allocates an ``int *`` per call, checks types again, and raises
an exception for every refused packet (a replayed or forged packet is routine traffic here).
:class:`DirectSession` keeps one 1500-byte buffer and one length cell per libsrtp session (as
pylibsrtp does, but allocated once), calls ``srtp_protect``/``srtp_unprotect`` and friends on
the session pylibsrtp created (so pylibsrtp still owns its lifetime and deallocation), and
callers count failures by status code without an exception.

pylibsrtp's binding module is private API; :func:`available` says whether it has the functions
this needs, and :class:`router.transport.srtp.SrtpContext` falls back to the public API if not.
The codec is not thread-safe (one buffer per session), like everything per peer in the router.
"""

from __future__ import annotations

from typing import Any, Final

import pylibsrtp

try:  # pragma: no cover - exercised by whichever branch the installed pylibsrtp allows
    from pylibsrtp import _binding as _b

    _ffi: Any = _b.ffi
    _lib: Any = _b.lib
    _AVAILABLE = all(
        hasattr(_lib, name)
        for name in ("srtp_protect", "srtp_unprotect", "srtp_protect_rtcp", "srtp_unprotect_rtcp")
    )
except ImportError:  # pragma: no cover
    _ffi = _lib = None
    _AVAILABLE = False

BUFFER: Final = 1500
"""pylibsrtp's buffer size; packets are checked against it before any call."""

#: libsrtp ``srtp_err_status_t`` values (pylibsrtp's ``ERRORS`` list is indexed by them).
OK: Final = 0
AUTH_FAIL: Final = 7
CIPHER_FAIL: Final = 8
REPLAY_FAIL: Final = 9
REPLAY_OLD: Final = 10
CANT_CHECK: Final = 14
PKT_IDX_OLD: Final = 26


def available() -> bool:
    """Whether the direct path can be used with the installed pylibsrtp."""
    return _AVAILABLE


class DirectSession:
    """One libsrtp session's raw handles: call ``func(srtp, cdata, length)`` with ``length[0]``
    set and the packet copied into ``buffer``; non-zero means refused (a status above).

    :class:`router.transport.srtp.SrtpContext` inlines these calls on its per-packet paths
    (a method call per packet here would cost what the direct path saves).
    """

    __slots__ = (
        "buffer",
        "cdata",
        "length",
        "protect",
        "protect_address",
        "protect_rtcp",
        "session",
        "srtp",
        "srtp_address",
        "unprotect",
        "unprotect_address",
        "unprotect_rtcp",
    )

    def __init__(self, session: pylibsrtp.Session) -> None:
        if not _AVAILABLE:
            raise RuntimeError("pylibsrtp's cffi binding is not available")
        self.session = session  # owns srtp_t and frees it when collected
        self.srtp: Any = session._srtp[0]
        self.cdata: Any = _ffi.new("char[]", BUFFER)
        self.buffer: Any = _ffi.buffer(self.cdata)
        self.length: Any = _ffi.new("int *")
        self.protect: Any = _lib.srtp_protect
        self.protect_rtcp: Any = _lib.srtp_protect_rtcp
        self.unprotect: Any = _lib.srtp_unprotect
        self.unprotect_rtcp: Any = _lib.srtp_unprotect_rtcp
        #: The same session and ``srtp_protect`` as plain addresses, for the compiled fast path
        #: (router.transport.fastpath), which calls pylibsrtp's libsrtp on pylibsrtp's session.
        self.srtp_address: int = int(_ffi.cast("uintptr_t", self.srtp))
        protect = _ffi.addressof(_lib, "srtp_protect")
        self.protect_address: int = int(_ffi.cast("uintptr_t", protect))
        unprotect = _ffi.addressof(_lib, "srtp_unprotect")
        self.unprotect_address: int = int(_ffi.cast("uintptr_t", unprotect))

    def call(self, func: Any, data: bytes) -> tuple[int, bytes | None]:
        """``(status, output)`` for one packet (the slow but complete form of the inlined call)."""
        n = len(data)
        self.length[0] = n
        self.buffer[0:n] = data
        status: int = func(self.srtp, self.cdata, self.length)
        if status:
            return status, None
        return OK, self.buffer[0 : self.length[0]]


__all__ = [
    "AUTH_FAIL",
    "BUFFER",
    "CANT_CHECK",
    "CIPHER_FAIL",
    "OK",
    "PKT_IDX_OLD",
    "REPLAY_FAIL",
    "REPLAY_OLD",
    "DirectSession",
    "available",
]
