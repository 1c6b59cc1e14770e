"""How every node process (router, TURN, front door) reads SIGTERM and SIGINT.

The first SIGTERM asks for a drain: stop taking new work, finish what runs, exit when empty or
at the drain deadline. A second SIGTERM, or any SIGINT, asks to stop now. Nodes without a
drain (the front door) treat both as "stop now".

One receiver stays open for the whole life of the process. Opening a receiver per phase (one
for "wait for SIGTERM", another for "wait for a second one") is what broke before: a task still
iterating a receiver whose block had exited raised ``open_signal_receiver block already
exited``, and a signal landing between two receivers reached Python's default handler and
killed the process mid-shutdown with nothing deregistered. Trio re-delivers signals still
pending when the receiver closes; they go to ``SIG_IGN``, and once a stop began the handlers stay
ignored until the process exits (a repeated signal then cannot kill a process that is already
cleaning up; SIGKILL still can). A receiver cancelled without any signal restores the previous
handlers.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import trio

from control.logs import get_logger

log = get_logger("control.stopsignals")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Two events fed by SIGTERM/SIGINT: :attr:`drain` (first SIGTERM) and :attr:`stop`."""

    def __init__(self, *, drain_on_sigterm: bool = True) -> None:
        self.drain_on_sigterm = drain_on_sigterm
        self.drain = trio.Event()
        """Set by the first SIGTERM (and by anything that sets :attr:`stop`)."""
        self.stop = trio.Event()
        """Set by a second SIGTERM or any SIGINT: end now, skipping what is left of a drain."""
        self.received: list[int] = []

    def handle(self, signum: int) -> None:
        """Account one signal (public so that in-process callers can simulate one)."""
        self.received.append(signum)
        first_term = signum == signal.SIGTERM and not self.drain.is_set()
        if first_term and self.drain_on_sigterm:
            log.info("SIGTERM: draining (a second SIGTERM or SIGINT stops at once)")
            self.drain.set()
            return
        log.info("%s: stopping now", signal.Signals(signum).name)
        self.drain.set()
        self.stop.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Receive signals until cancelled; run it in the process's outermost nursery."""
        previous = {s: signal.signal(s, signal.SIG_IGN) for s in STOP_SIGNALS}
        try:
            with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
                task_status.started()
                async for signum in signals:
                    self.handle(signum)
        finally:
            if not self.drain.is_set():
                for signum, handler in previous.items():
                    signal.signal(signum, handler)

    async def until_stopped_or(self, done: Callable[[], bool], deadline: float,
                               poll: float = 0.25) -> str:
        """Wait until ``done()``, a stop request or ``deadline`` seconds: ``empty``,
        ``stopped`` or ``deadline``."""
        with trio.move_on_after(deadline):
            while not done():
                if self.stop.is_set():
                    return "stopped"
                with trio.move_on_after(poll):
                    await self.stop.wait()
            return "empty"
        return "deadline"


__all__ = ["STOP_SIGNALS", "StopSignals"]
