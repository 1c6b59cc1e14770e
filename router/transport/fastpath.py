"""The compiled fast path: C twins of the router's three hottest per-packet loops.

Why: under the meeting load the router spent ~41 % of its busy time in ``sendto`` and most of
the rest in Python's per-packet overhead around libsrtp and the socket (``regio bench sfu
--profile``). ``router/transport/_fastpath.c`` runs the same loops without the interpreter:

* :func:`protect_batch` - :meth:`router.transport.srtp.SrtpContext.protect_rtp_batch`'s loop,
  calling pylibsrtp's own ``srtp_protect`` on pylibsrtp's own session (one libsrtp, one state);
* :func:`send_batch` - :class:`router.transport.udp_driver.UdpDriver`'s flush with
  ``sendmmsg(2)`` (up to 64 datagrams per system call);
* :func:`recv_batch` - the driver's read loop with ``recvmmsg(2)``;
* ``ingest`` - the mux's handling of that batch for its commonest datagram, SRTP from a
  validated peer: ``srtp_unprotect`` on the peer's session and its ``rtp_handler``, with every
  other datagram passed to ``TransportMux.receive_datagram`` in order (the driver calls it
  directly when its core is a mux; tests/transport/test_ingest.py runs both on one script);
* :func:`protect_copies` - the media plane's flush of the forwarder's copies: each protected
  on its subscriber's session and queued on its transport, in order, with copies for anything
  else (trunk legs, transports that may not send) left to the Python grouping;
* :func:`one_byte_rewriter` - the header-extension id rewrite of Chromium's one-byte form
  (router.forwarding.packet), once per incoming packet and subscriber mapping (~6 %);
* :func:`route`, :func:`fan_out`, :func:`twcc_results` and :func:`read_transport_seq` - the
  forwarding core's route of an in-order packet (sequence and jitter bookkeeping, publisher
  TWCC record, NACK cache, then the copies), its per-subscriber copy loop, TWCC feedback walk
  and transport-wide sequence reader, from
  ``router/forwarding/_fanout.c`` (its own module: forwarding code, switched by the same
  ``REGIO_FASTPATH``);
* :func:`delay_detector` - the bandwidth estimator's packet groups and trend line
  (router.forwarding.gcc_delay), from ``router/forwarding/_gcc.c``;
* the transport-cc codec's chunk and delta loops and the walk that turns a publisher's arrival
  times into feedback, from ``router/rtp/_twcc.c`` (router.rtp.twcc picks them up itself: the
  codec does not import transports).

The pure-Python loops stay where they were and are the reference: the tests run both on the
same inputs (byte-identical SRTP output for the same keys and packets; the same datagrams on the
wire). The helper is built by ``make setup`` (``pip install -e .`` compiles it; it is optional,
so a machine without a C compiler still installs) and used when it imports, unless
``REGIO_FASTPATH=off`` is set (measurements of the reference path). When it is unavailable the
router logs one line saying so and runs the reference path.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from control.logs import get_logger
from router.compiled_switch import ENV, switched_off
from router.rtp import twcc

log = get_logger("router.fastpath")

_module: ModuleType | None
_reason: str
try:
    import router.transport._fastpath as _compiled

    _module = _compiled
    _reason = ""
except ImportError as exc:  # pragma: no cover - depends on the machine's build
    _module = None
    _reason = f"not built ({exc}); run `make setup` with a C compiler and Python headers"

_logged = False


def built() -> bool:
    """Whether the compiled module imported (``make setup`` built it)."""
    return _module is not None


def enabled() -> bool:
    """Whether the compiled loops are used (built, and not switched off by ``REGIO_FASTPATH``)."""
    return _module is not None and not switched_off()


def describe() -> str:
    """One line for logs and bench notes: which path the per-packet loops take, and why."""
    if _module is None:
        return f"Python reference path: compiled fast path {_reason}"
    if not enabled():
        return f"Python reference path: compiled fast path switched off ({ENV}=off)"
    loops = "libsrtp protect, sendmmsg, recvmmsg, SRTP ingest, copy flush, poll past Trio when idle"
    missing = []
    if _forwarding_helper("fan_out") is None:
        missing.append("forwarding loops not built (router.forwarding._fanout)")
    if delay_detector() is None:
        missing.append("delay detector not built (router.forwarding._gcc)")
    if twcc.compiled_twcc() is None:
        missing.append("TWCC codec loops not built (router.rtp._twcc)")
    if missing:
        return f"compiled fast path ({loops}); {'; '.join(missing)}"
    return (
        f"compiled fast path ({loops}, in-order route, fan-out, TWCC feedback, transport-wide "
        "sequence, delay-detector and TWCC codec loops)"
    )


def log_choice() -> None:
    """Log :func:`describe` once per process (at warning level when the helper is missing)."""
    global _logged
    if _logged:
        return
    _logged = True
    if _module is None:
        log.warning("%s", describe())
    else:
        log.info("%s", describe())


def compiled() -> Any:
    """The compiled module (callers check :func:`enabled` first)."""
    if _module is None:
        raise RuntimeError(describe())
    return _module


def protect_batch(func: int, session: int, packets: list[bytes], max_length: int,
                  trailer: int, dest: object, out: list[Any]) -> int:
    """Protect each packet with libsrtp's ``func`` (an ``srtp_protect`` address) on ``session``
    (an ``srtp_t``), appending ``(srtp, dest)`` to ``out``; returns how many failed (too short,
    longer than ``max_length``, or refused by libsrtp), which are skipped as in the reference."""
    failed: int = compiled().protect_batch(func, session, packets, max_length, trailer, dest, out)
    return failed


def send_batch(fd: int, family: int, items: list[Any]) -> tuple[int, int, int]:
    """``sendmmsg`` ``items`` (``(bytes, address)``) from the start: ``(consumed, errors,
    stopped)``; ``stopped`` is 1 when the socket would block, 2 when ``items[consumed]`` has an
    address only ``sendto`` takes (a host name, IPv6 scope), 0 when all were consumed."""
    result: tuple[int, int, int] = compiled().send_batch(fd, family, items)
    return result


def recv_batch(fd: int, limit: int, out: list[Any]) -> tuple[int, int, int]:
    """``recvmmsg`` up to ``limit`` datagrams, appending ``(bytes, address)`` to ``out``:
    ``(received, truncated, errno)``; datagrams over 9,216 bytes are dropped and counted."""
    result: tuple[int, int, int] = compiled().recv_batch(fd, limit, out)
    return result


OneByteRewrite = Callable[[Any, int, int, bytes], "bytes | int | None"]


def one_byte_rewriter() -> OneByteRewrite | None:
    """The compiled one-byte extension rewrite (``bytes`` if changed, ``None`` if not, or the
    ``int`` offset of an element overrunning the block), or None when the fast path is off."""
    if not enabled():
        return None
    func: OneByteRewrite = compiled().rewrite_one_byte
    return func


FanOut = Callable[..., int]
"""``router.forwarding._fanout.fan_out`` (its arguments are documented in the C source)."""


def forwarding_compiled() -> Any:
    """The forwarding core's compiled module (``router/forwarding/_fanout.c``), whatever
    ``REGIO_FASTPATH`` says; ImportError if it is not built. Imported on first use, not with
    this module: router.forwarding imports this module while it loads."""
    import router.forwarding._fanout as forwarding_module

    return forwarding_module


def _compiled_attribute(load: Callable[[], Any], name: str) -> Callable[..., Any] | None:
    """``name`` from the compiled module ``load`` imports, or None when the fast path is off
    or that module is not built."""
    if not enabled():
        return None
    try:
        module = load()
    except ImportError:  # pragma: no cover - depends on the machine's build
        return None
    found: Callable[..., Any] = getattr(module, name)
    return found


def _forwarding_helper(name: str) -> Callable[..., Any] | None:
    return _compiled_attribute(forwarding_compiled, name)


def fan_out() -> FanOut | None:
    """The compiled per-subscriber loop of ``router.forwarding.routing.forward``, or None when
    the fast path is off or that module is not built (then the reference loop runs)."""
    return _forwarding_helper("fan_out")


def route() -> Callable[..., int] | None:
    """The compiled steady-state ``Forwarder.route_rtp`` (an in-order packet of a known
    stream, routed whole, or handed back untouched), or None (see fan_out)."""
    return _forwarding_helper("route")


def protect_copies() -> Callable[..., tuple[int, list[Any]]] | None:
    """The compiled flush of the forwarder's copies to their transports (``(queued, rest)``;
    see router/transport/_fastpath.c), or None when the fast path is off."""
    if not enabled():
        return None
    func: Callable[..., tuple[int, list[Any]]] = compiled().protect_copies
    return func


def twcc_results() -> Callable[..., Any] | None:
    """The compiled TWCC feedback loop of ``SubscriberLink.on_twcc``, or None (see fan_out)."""
    return _forwarding_helper("twcc_results")


def read_transport_seq() -> Callable[[bytes | bytearray | memoryview, int], int] | None:
    """The compiled ``router.forwarding.transport_seq.read_transport_seq``, or None."""
    return _forwarding_helper("read_transport_seq")


def gcc_compiled() -> Any:
    """The compiled delay detector's module (``router/forwarding/_gcc.c``), whatever
    ``REGIO_FASTPATH`` says; ImportError if it is not built."""
    import router.forwarding._gcc as gcc_module

    return gcc_module


def delay_detector() -> Callable[..., Any] | None:
    """The compiled twin of ``router.forwarding.gcc_delay.PyDelayDetector`` (a type), or None
    when the fast path is off or it is not built."""
    return _compiled_attribute(gcc_compiled, "DelayDetector")


__all__ = [
    "ENV",
    "FanOut",
    "built",
    "delay_detector",
    "describe",
    "enabled",
    "fan_out",
    "forwarding_compiled",
    "gcc_compiled",
    "log_choice",
    "one_byte_rewriter",
    "protect_batch",
    "protect_copies",
    "read_transport_seq",
    "recv_batch",
    "route",
    "send_batch",
    "twcc_results",
]
