"""The Trio side of the session core: WebSocket connections, the UDP batch hook, the timer.

Everything that touches :class:`~router.session.core.SessionCore` runs in the one Trio thread,
so the core needs no locks. After every input the hub *flushes*: core messages go into each
connection's bounded memory channel (``send_nowait``: no checkpoint, callable from the UDP
batch hook), close requests become a sentinel in the same channel, and room notices go to the
node (etcd placement). A connection whose channel is full is a slow consumer and is closed
rather than buffered without bound.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

import trio

from router.session.core import RoomNotice, SessionCore
from router.transport import TransportMux

OUTGOING_QUEUE = 256
"""Messages buffered per connection before it counts as a slow consumer and is closed."""

TIMER_RECHECK = 0.005
"""While media flows, how often (seconds) the UDP batch hook runs the core's due timers and
re-arms the timer task; also the slack that task is given meanwhile.

Media creates deadlines of its own: TWCC feedback due to a publisher 50 ms after its first
unreported packet, a NACK for a gap just seen, a deferred keyframe request. Only signaling calls
re-armed the timer task before, so under steady media it slept until the next receiver report
(~1 s): publishers got TWCC feedback about ~500 packets once a second instead of every 50 ms,
upstream NACKs went out up to a second late, and building that feedback stalled the media path
for 5-25 ms at a time. Running what is due inside the batch (the driver is awake and flushes
right after) rather than waking the timer task and then the driver again saves two task
switches per deadline: ~100 a second under the meeting load. So while media flows the timer
task sleeps until a deadline plus this slack, and the batch hook, which sees every deadline
within this long of its time, normally gets there first."""


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """Sentinel in a connection's outgoing channel: close with this code."""

    code: int
    reason: str


Outgoing = str | CloseRequest


class LatencyRecorder:
    """Per-batch forwarding latency, weighted by packets (see :mod:`router.metrics`)."""

    BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)

    def __init__(self) -> None:
        self.counts = [0] * (len(self.BUCKETS) + 1)
        self.total = 0.0
        self.observations = 0

    def observe(self, seconds: float, weight: int) -> None:
        # Once per batch: bisect rather than a generator over the buckets (~2 % of the router).
        index = bisect_left(self.BUCKETS, seconds)
        self.counts[index] += weight
        self.total += seconds * weight
        self.observations += weight


class Hub:
    """Connects WebSocket tasks, the UDP driver and the timer task to one core."""

    def __init__(
        self,
        core: SessionCore,
        on_notice: Callable[[RoomNotice], None] | None = None,
        clock: Callable[[], float] = trio.current_time,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.core = core
        self.on_notice = on_notice
        self.clock = clock
        self.wall = wall
        self.latency = LatencyRecorder()
        self.notify_transport: Callable[[], None] = lambda: None
        self._channels: dict[int, trio.MemorySendChannel[Outgoing]] = {}
        self._timer_scope: trio.CancelScope | None = None
        self._batch_start: float | None = None
        self._batch_out = 0
        self._timer_recheck_at = -math.inf

    # -- WebSocket side -------------------------------------------------------------------------

    def connect(self) -> tuple[int, trio.MemoryReceiveChannel[Outgoing]]:
        send, recv = trio.open_memory_channel[Outgoing](OUTGOING_QUEUE)
        conn_id = self.core.open_connection(self.clock())
        self._channels[conn_id] = send
        self._after_api()
        return conn_id, recv

    def message(self, conn_id: int, data: str | bytes) -> None:
        self.core.receive_message(conn_id, data, self.clock(), self.wall())
        self._after_api()

    def disconnect(self, conn_id: int) -> None:
        channel = self._channels.pop(conn_id, None)
        if channel is not None:
            channel.close()
        self.core.connection_lost(conn_id, self.clock())
        self._after_api()

    def evict_room(self, room: str, code: str, text: str) -> int:
        """:meth:`SessionCore.evict_room` from outside a WebSocket task (the placement task)."""
        gone = self.core.evict_room(room, code, text, self.clock())
        self._after_api()
        return gone

    @property
    def connection_count(self) -> int:
        return len(self._channels)

    # -- UDP side (sync; runs inside the driver's batch, no checkpoints) -----------------------

    def mark_batch(self) -> None:
        """The driver's ``on_read``: a batch's first datagrams were just read (the latency
        histogram runs from here to the end of the batch)."""
        if self._batch_start is None:
            self._batch_start = time.perf_counter()
            # RTP is routed as it is read (SessionCore.on_rtp), before drain_transport runs.
            self._batch_out = self.core.stats.packets_out

    def drain_transport(self, mux: TransportMux) -> None:
        """The driver's ``after_batch``: hand every event of the batch to the core."""
        now = self.clock()
        on_event = self.core.on_transport_event
        stats = self.core.stats
        before = stats.packets_out if self._batch_start is None else self._batch_out
        while (item := mux.next_event()) is not None:
            on_event(item[0], item[1], now)
        self.core.flush_media()
        start, self._batch_start = self._batch_start, None
        forwarded = stats.packets_out - before
        if start is not None and forwarded:
            self.latency.observe(time.perf_counter() - start, forwarded)
        if self.core.has_output():
            self.flush()
        if now >= self._timer_recheck_at:
            self._timer_recheck_at = now + TIMER_RECHECK
            self._timers_in_batch(now)

    # -- timers ---------------------------------------------------------------------------------

    async def run_timers(self) -> None:
        """One task for every session deadline (join timeouts, reconnect grace)."""
        while True:
            deadline = self.core.get_timer()
            with trio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
                self._timer_scope = scope
                await trio.sleep_forever()
            self._timer_scope = None
            now = self.clock()
            deadline = self.core.get_timer()
            if deadline is not None and deadline <= now:
                self.core.handle_timer(now)
                self._after_api()

    # -- output ---------------------------------------------------------------------------------

    def after_change(self) -> None:
        """Something outside signaling and the media port changed the core (a trunk): send
        its messages, wake the media driver and re-arm the timer task."""
        self._after_api()

    def _timers_in_batch(self, now: float) -> None:
        """Run the core's due timers now (the driver flushes what they queue right after this
        hook) and move the timer task's wake-up to the next deadline plus the slack (moving a
        cancel scope's deadline reschedules its task; no task switch now)."""
        core = self.core
        deadline = core.get_timer()
        if deadline is not None and deadline <= now:
            core.handle_timer(now)
            if core.has_output():
                self.flush()
            deadline = core.get_timer()
        scope = self._timer_scope
        if scope is not None:
            wake = math.inf if deadline is None else deadline + TIMER_RECHECK
            if wake != scope.deadline:
                # Trio's setter runs a context manager even for an unchanged value, and most
                # rechecks find nothing due (the deadline stays): ~10 % of this hook's time.
                scope.deadline = wake

    def _after_api(self) -> None:
        self.flush()
        self.notify_transport()
        if self._timer_scope is not None:
            self._timer_scope.cancel()

    def flush(self) -> None:
        core = self.core
        for conn_id, text in core.messages_to_send():
            self._put(conn_id, text)
        for conn_id, code, reason in core.closes_to_send():
            self._put(conn_id, CloseRequest(code, reason))
            channel = self._channels.pop(conn_id, None)
            if channel is not None:
                channel.close()
        for notice in core.room_notices():
            if self.on_notice is not None:
                self.on_notice(notice)

    def _put(self, conn_id: int, item: Outgoing) -> None:
        channel = self._channels.get(conn_id)
        if channel is None:
            return
        try:
            channel.send_nowait(item)
        except trio.WouldBlock:
            # Slow consumer: drop the connection (its participant gets the grace period).
            self._channels.pop(conn_id, None)
            channel.close()
            self.core.connection_lost(conn_id, self.clock())
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self._channels.pop(conn_id, None)


__all__ = ["OUTGOING_QUEUE", "TIMER_RECHECK", "CloseRequest", "Hub", "LatencyRecorder"]
