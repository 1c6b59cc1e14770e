"""Draining: stop taking new rooms, keep current ones, exit when empty or at a deadline.

Two halves:

* :func:`request_drain` is what ``regio node drain NODE`` runs: it sets the draining flag in the
  node's record directly (a guarded transaction that keeps the node's lease), so placement stops
  choosing the node at once, even before the node itself reacts.
* :class:`DrainController` is the node-side library piece routers and TURN nodes run: it starts
  a drain on SIGTERM, on :meth:`DrainController.request`, or when the registration sees the flag
  set in etcd; it publishes ``draining`` immediately and returns when the node has no active
  work left or the deadline passed, so the node can deregister and exit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import trio

from control import schema
from control.etcd import Compare, EtcdClient, EtcdError, Put
from control.logs import get_logger
from control.registry import DrainRequested, NodeRegistration
from control.schema import NodeRecord
from control.stopsignals import StopSignals

log = get_logger("control.drain")


class NodeNotFound(LookupError):
    """No node with that id is registered."""


async def request_drain(client: EtcdClient, node_id: str, attempts: int = 20) -> NodeRecord:
    """Set ``draining`` on a registered node's record; returns the record as written.

    The write keeps the node's lease (``ignore_lease``) and is guarded by the mod revision
    read just before, so it can never resurrect a node whose lease expired meanwhile.
    """
    key = schema.node_key(node_id)
    for _ in range(attempts):
        kv = await client.get(key)
        if kv is None:
            raise NodeNotFound(node_id)
        record = NodeRecord.decode(kv.value)
        if record.draining:
            return record
        drained = record.with_changes(draining=True)
        result = await client.txn(
            [Compare(key, "mod", "==", kv.mod_revision)],
            [Put(key, drained.encode(), ignore_lease=True)],
        )
        if result.succeeded:
            return drained
    raise EtcdError(f"node {node_id} kept changing; drain not recorded")


@dataclass(frozen=True, slots=True)
class DrainConfig:
    """How a node drains."""

    deadline: float = 300.0
    """Seconds after the drain starts when the node exits even with rooms left."""
    poll_interval: float = 0.25
    """How often the active-work count is checked."""
    handle_sigterm: bool = True
    """Start draining on SIGTERM (needs the main thread); a second SIGTERM or a SIGINT ends
    the drain at once."""


@dataclass(frozen=True, slots=True)
class DrainOutcome:
    """How a drain ended."""

    reason: Literal["empty", "deadline", "stopped"]
    remaining: int
    """Active work left when the node gave up (0 when empty)."""
    trigger: str
    """What started the drain: ``sigterm``, ``etcd`` or the caller's reason."""


class DrainController:
    """Runs a node's drain; ``active()`` counts the work (rooms, allocations) still open."""

    def __init__(
        self,
        registration: NodeRegistration,
        active: Callable[[], int],
        config: DrainConfig | None = None,
        signals: StopSignals | None = None,
    ) -> None:
        self.registration = registration
        self.active = active
        self.config = config or DrainConfig()
        self.signals = signals
        """The process's signal receiver; without one (and ``handle_sigterm``) the controller
        opens its own for the time of :meth:`run`."""
        self.started = trio.Event()
        """Set once draining began; front-line code checks it to refuse new work."""
        self.trigger = ""

    @property
    def draining(self) -> bool:
        return self.started.is_set()

    def request(self, reason: str = "request") -> None:
        """Start draining now (idempotent)."""
        if self.started.is_set():
            return
        self.trigger = reason
        log.info("node %s draining (%s)", self.registration.record.node_id, reason)
        self.registration.set_draining()
        self.started.set()

    async def run(self) -> DrainOutcome:
        """Wait for a drain trigger, then until the node is empty, the deadline passes or a
        second signal asks to stop now."""
        events = self.registration.events()
        if self.registration.draining:
            self.request("etcd")
        signals = self.signals
        async with trio.open_nursery() as nursery:
            if signals is None and self.config.handle_sigterm:
                signals = StopSignals()
                await nursery.start(signals.run)
            if signals is not None:
                nursery.start_soon(self._on_signals, signals)
            nursery.start_soon(self._on_etcd_flag, events)
            await self.started.wait()
            if signals is None:
                signals = StopSignals()  # nothing will set it: the drain ends empty or late
            reason = await signals.until_stopped_or(lambda: self.active() <= 0,
                                                    self.config.deadline,
                                                    self.config.poll_interval)
            nursery.cancel_scope.cancel()
        left = self.active() if reason != "empty" else 0
        if reason == "deadline":
            log.warning("drain deadline reached with %d active; exiting anyway", left)
        elif reason == "stopped":
            log.warning("stop requested during the drain with %d active; exiting", left)
        return DrainOutcome(reason, left, self.trigger)  # type: ignore[arg-type]

    async def _on_signals(self, signals: StopSignals) -> None:
        await signals.drain.wait()
        self.request("sigterm")

    async def _on_etcd_flag(self, events: trio.MemoryReceiveChannel[object]) -> None:
        async for event in events:
            if isinstance(event, DrainRequested):
                self.request("etcd")
                return
