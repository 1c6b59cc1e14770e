"""A small systemd notification client (``sd_notify(3)``) for nodes run as ``Type=notify``.

Why our own: the protocol is one datagram of ``KEY=VALUE`` lines to the ``AF_UNIX`` socket named
by ``$NOTIFY_SOCKET``, and libsystemd's Python bindings are not on PyPI. What a node says:

* ``READY=1`` once it listens (and, clustered, is registered in etcd): systemd then considers
  the unit started, so ``After=`` ordering and ``systemctl start`` waiting mean "serving";
* ``WATCHDOG=1`` from a task of the node's own Trio loop (:func:`run_watchdog`), every half
  ``$WATCHDOG_USEC``, and only while the node's health check passes: a stuck event loop, or a
  node whose media socket died, stops pinging, and systemd restarts it (``Restart=on-failure``);
* ``STOPPING=1`` when a drain starts (SIGTERM or ``regio node drain``), with a ``STATUS=`` line
  operators see in ``systemctl status``.

``$NOTIFY_SOCKET`` is either a filesystem path or, starting with ``@``, a Linux abstract
namespace name (systemd uses a path, but containers and test harnesses often use abstract
names). Without the variable every call is a no-op, so the nodes run unchanged outside systemd.
A failed send is logged once and never raised: notification must never take a node down.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping

import trio

from control.logs import get_logger

log = get_logger("control.sdnotify")


def socket_address(value: str) -> str | bytes:
    """The ``sendto`` address for a ``$NOTIFY_SOCKET`` value; ValueError if it names none.

    ``@name`` is the abstract namespace (a leading NUL byte on the wire); an absolute path is a
    filesystem socket. Anything else (``vsock:``, relative paths) is not supported here.
    """
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    raise ValueError(f"NOTIFY_SOCKET {value!r} is neither an absolute path nor @abstract")


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between two ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``, as systemd
    recommends), or None when the watchdog is off or meant for another process
    (``$WATCHDOG_PID``)."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner and (not owner.isdigit() or int(owner) != pid):
        return None
    return int(usec) / 1e6 / 2


class SystemdNotifier:
    """Sends state changes to systemd; every method is a no-op when not run by systemd."""

    def __init__(self, address: str | bytes | None, interval: float | None = None) -> None:
        self.address = address
        self.watchdog_interval = interval if address is not None else None
        self.sent = 0
        self.failures = 0
        self._sock: socket.socket | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET", "")
        if not value:
            return cls(None)
        try:
            address = socket_address(value)
        except ValueError as exc:
            log.warning("systemd notification off: %s", exc)
            return cls(None)
        return cls(address, watchdog_interval(env, os.getpid()))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines as one datagram; True if the kernel took it."""
        if self.address is None:
            return False
        payload = "\n".join(lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self.address)
        except OSError as exc:
            self.failures += 1
            if self.failures == 1:
                log.warning("systemd notification failed: %s", exc)
            return False
        self.sent += 1
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *_status(status))

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *_status(status))

    def status(self, text: str) -> bool:
        return self.notify(*_status(text))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _status(text: str) -> tuple[str, ...]:
    # STATUS is one line: a newline would start another assignment.
    return (f"STATUS={' '.join(text.split())}",) if text else ()


async def run_watchdog(notifier: SystemdNotifier, healthy: Callable[[], bool]) -> None:
    """Ping systemd's watchdog from this Trio loop while ``healthy()`` holds.

    Running in the node's own loop is the point: if the loop stalls (a blocking call, a busy
    loop) the pings stop and systemd restarts the node after ``WatchdogSec``. An unhealthy node
    is reported once in ``STATUS=`` and then left to the watchdog. Returns at once when systemd
    set no watchdog.
    """
    interval = notifier.watchdog_interval
    if interval is None:
        return
    reported = False
    while True:
        if healthy():
            notifier.watchdog()
            reported = False
        elif not reported:
            notifier.status("unhealthy: watchdog pings withheld")
            log.error("health check failed: withholding watchdog pings")
            reported = True
        await trio.sleep(interval)


__all__ = ["SystemdNotifier", "run_watchdog", "socket_address", "watchdog_interval"]
