"""Waiting on a media socket without a Trio scheduler round trip while Trio has nothing to do.

Why: a router under the meeting load wakes ~1,200 times a second for ~2 datagrams each, and
on this machine one wakeup through ``trio.lowlevel.wait_readable`` costs ~48 µs of CPU against
~19 µs for a blocking ``poll(2)`` on the same socket (the scheduler's loop in Python, the
``epoll_ctl`` that re-arms Trio's one-shot registration, the task switch). Measured inside a
router under that load, switching between the two every two seconds: 12-16 % of its CPU.

How: while nothing else in the Trio run is runnable, the driver blocks in one ``poll(2)`` on
its socket *and on Trio's own epoll descriptor* (``select.poll``, the GIL released), with
Trio's next deadline as the timeout. Trio's descriptor turns readable whenever anything Trio
waits for is ready (another socket, ``run_sync_soon`` from a thread, a signal through the
wakeup socket), so only "the media socket alone is ready" skips the scheduler; anything else
(Trio I/O, a deadline due, a task runnable) sends the driver to the ordinary
``wait_readable``, and Trio's loop runs exactly as before.

The one thing ``poll`` cannot see is a task Trio resumed in the same scheduling batch as the
driver: it is already off the run queue and runs when the driver next yields. So the driver
skips the scheduler only in a batch of its own: an instrument's ``after_io_wait`` hook sees
the run queue just before Trio forms the batch, and the batch is the driver's alone when that
queue holds at most one task, no deadline is due within :data:`DEADLINE_MARGIN` (Trio expires
deadlines right after the hook) and no task waits for idleness. As a backstop the driver also
goes through Trio at least every :data:`DIRECT_SPAN`, so even a task this reasoning missed
(a process stalled longer than the margin between the hook and Trio's next line) waits no
longer than that.

This reads Trio's private run-loop state (the runner's run queue, idle waiters, deadlines,
clock and epoll object). :func:`direct_wait` checks all of it once and returns None when any
of it is not what this module expects (another Trio version or I/O backend, a mock clock,
guest mode): the driver then waits through Trio only.
"""

from __future__ import annotations

import math
import select
from collections import deque
from time import perf_counter
from typing import Any, Final

import trio

__all__ = ["DEADLINE_MARGIN", "DIRECT_SPAN", "DirectWait", "direct_wait"]

DIRECT_SPAN: Final = 0.05
"""Seconds the driver may go on without passing through Trio's scheduler at most."""
DEADLINE_MARGIN: Final = 0.001
"""A deadline this close to the hook counts as expiring in the batch Trio is about to run."""


class DirectWait(trio.abc.Instrument):
    """One driver's ``poll`` on its socket and Trio's epoll descriptor (see the module)."""

    def __init__(self, runner: Any, fd: int) -> None:
        self._runq: deque[object] = runner.runq
        self._idle: Any = runner.waiting_for_idle
        self._deadlines: Any = runner.deadlines
        self._offset: float = runner.clock.offset
        self._fd = fd
        self._epoll_fd: int = runner.io_manager._epoll.fileno()
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)
        self._poller.register(self._epoll_fd, select.POLLIN)
        self._alone = False
        self._yield_by = 0.0
        #: Wakeups that skipped the scheduler, and waits that went through Trio.
        self.direct = 0
        self.through_trio = 0

    def after_io_wait(self, timeout: float) -> None:
        """Trio's hook before it forms its next batch (see the module)."""
        self._alone = (
            len(self._runq) <= 1
            and not self._idle
            and self._deadlines.next_deadline() - self._offset > perf_counter() + DEADLINE_MARGIN
        )

    def scheduled(self) -> None:
        """The driver just came back from a wait through Trio."""
        self.through_trio += 1
        self._yield_by = perf_counter() + DIRECT_SPAN

    def ready(self) -> bool:
        """Block until the socket is readable while Trio has nothing to do; True if it is and
        the caller may go on without a checkpoint, False if the caller must wait through Trio
        (another task shares its batch or is runnable, a deadline is due, Trio's I/O is ready,
        or :data:`DIRECT_SPAN` has passed)."""
        if not self._alone or self._runq or self._idle:
            return False
        now = perf_counter()
        timeout = min(self._deadlines.next_deadline() - self._offset, self._yield_by) - now
        if timeout <= 0:
            return False
        events = self._poller.poll(math.ceil(timeout * 1000))
        # Readable and nothing else: an error alone (ICMP), or a descriptor closed under the
        # driver, goes through Trio, which reports it to the driver as before.
        if len(events) != 1 or events[0][0] != self._fd or not events[0][1] & select.POLLIN:
            return False
        self.direct += 1
        return True


def direct_wait(fd: int) -> DirectWait | None:
    """A :class:`DirectWait` for ``fd`` in the current Trio run, installed as an instrument
    (the caller removes it with ``trio.lowlevel.remove_instrument``), or None where Trio's run
    loop is not the one this module knows (then wait through Trio only). Call inside
    ``trio.run``."""
    try:
        from trio._core._run import GLOBAL_RUN_CONTEXT, SystemClock

        runner = GLOBAL_RUN_CONTEXT.runner
        usable = (
            type(runner.clock) is SystemClock
            and not runner.is_guest
            and isinstance(runner.runq, deque)
            and isinstance(runner.io_manager._epoll, select.epoll)
            and callable(runner.deadlines.next_deadline)
            and isinstance(runner.clock.offset, float)
            and hasattr(runner.waiting_for_idle, "__len__")
        )
    except (ImportError, AttributeError, RuntimeError):
        return None
    if not usable:
        return None
    wait = DirectWait(runner, fd)
    trio.lowlevel.add_instrument(wait)
    return wait
