"""Node registration: one key per node id, bound to a lease, fenced against stale processes.

Why it is built this way (see ../shared/REFERENCES.md, "Lessons: etcd"):

* Leases are not mutual exclusion. Every write is a transaction guarded by the key's
  mod revision and lease as last seen by this process, so a process that lost its claim can
  never overwrite the claim of another. Between two processes with one node id the newer one
  (later ``started_at``, then ``instance``) wins; the older one sees the foreign record (through
  a watch on its own key, or a failed guarded write), stops claiming and reports
  :class:`Fenced`.
* A write during a leader election can fail with an uncertain outcome. Every write is
  idempotent: a failed guard is followed by a read, and if the key already holds what we meant
  to write it counts as done.
* A lost lease (etcd unreachable longer than the TTL, or expired) means claiming again with a
  fresh lease when etcd answers. The key is per node id, so re-registration can never duplicate
  a node. If etcd kept the old lease alive (it refreshes leases on restart and leader change),
  the node keeps it, and so keeps the rooms bound to it.
* Load changes are coalesced to at most one write per ``load_interval``; draining is written at
  once.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import trio

from control import schema
from control.etcd import (
    Compare,
    Delete,
    EtcdClient,
    EtcdError,
    EtcdUnavailable,
    Get,
    Put,
    WatchBatch,
    WatchEvent,
)
from control.logs import get_logger
from control.schema import NodeRecord, SchemaError

log = get_logger("control.registry")


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """Timing of a node's registration."""

    ttl: int = 10
    """Lease TTL in seconds: how long a dead node stays visible at most (plus an election)."""
    load_interval: float = 1.0
    """Minimum seconds between two load updates (draining is never delayed)."""
    retry_delay: float = 0.2
    """Pause before retrying a write etcd could not take."""

    @property
    def keepalive_interval(self) -> float:
        """Renew three times per TTL, so one lost renewal never costs the lease."""
        return max(self.ttl / 3.0, 0.2)


@dataclass(frozen=True, slots=True)
class RegistryEvent:
    """Base of what a registration reports to its node."""


@dataclass(frozen=True, slots=True)
class Registered(RegistryEvent):
    """The node's record is in etcd under ``lease``."""

    lease: int
    reregistered: bool
    """True when an expired lease was replaced: rooms bound to the old lease are gone."""


@dataclass(frozen=True, slots=True)
class LeaseLost(RegistryEvent):
    """etcd has not confirmed the lease for longer than its TTL (or said it expired)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Fenced(RegistryEvent):
    """A newer process claims this node id; this one has stopped claiming it."""

    by_instance: str
    by_started_at: float


@dataclass(frozen=True, slots=True)
class DrainRequested(RegistryEvent):
    """Someone (``regio node drain``) set the draining flag in etcd."""


State = Literal["starting", "registered", "lost", "fenced", "stopped"]


def new_instance_id() -> str:
    """A random id for this process's claim."""
    return secrets.token_hex(8)


class _FencedError(Exception):
    def __init__(self, other: NodeRecord) -> None:
        self.other = other


class NodeRegistration:
    """Keeps one node registered for as long as :meth:`run` runs."""

    def __init__(
        self, client: EtcdClient, record: NodeRecord, config: RegistryConfig | None = None
    ) -> None:
        self.client = client
        self.config = config or RegistryConfig()
        self.key = schema.node_key(record.node_id)
        self._record = record
        self.state: State = "starting"
        self.lease = 0
        self.fenced = trio.Event()
        self.registered = trio.Event()
        self._mod = 0
        self._last_ok = time.monotonic()
        self._dirty = trio.Event()
        self._need_claim = False
        self._last_load_write = -math.inf
        self._subscribers: list[trio.MemorySendChannel[RegistryEvent]] = []
        self._lock = trio.Lock()
        #: Times the lease went unconfirmed past its TTL or expired (the node's rooms were at
        #: risk), and times a fresh lease replaced an expired one; exported as metrics.
        self.lease_losses = 0
        self.reregistrations = 0
        self._loss_counted = False

    # -- node-facing API --------------------------------------------------------------------

    @property
    def record(self) -> NodeRecord:
        """What this process wants published (its last written form, modulo pending load)."""
        return self._record

    @property
    def draining(self) -> bool:
        return self._record.draining

    def events(self) -> trio.MemoryReceiveChannel[RegistryEvent]:
        """Every event from now on, unbounded."""
        send, recv = trio.open_memory_channel[RegistryEvent](math.inf)
        self._subscribers.append(send)
        return recv

    def set_load(self, load: int, detail: Mapping[str, float] | None = None) -> None:
        """Publish a new load (and optional named figures such as ``forwarded_pps``); written
        within ``load_interval`` (coalesced)."""
        changes: dict[str, Any] = {}
        if load != self._record.load:
            changes["load"] = load
        if detail is not None and dict(detail) != dict(self._record.load_detail):
            changes["load_detail"] = dict(detail)
        if changes:
            self._record = self._record.with_changes(**changes)
            self._dirty.set()

    def set_draining(self) -> None:
        """Mark the node draining; written at once (no rate limit)."""
        if not self._record.draining:
            self._record = self._record.with_changes(draining=True)
            self._last_load_write = -math.inf
            self._dirty.set()

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until the published record equals :attr:`record` (tests, drain)."""
        with trio.fail_after(timeout):
            while self._dirty.is_set() or self._mod == 0:
                await trio.sleep(0.02)

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Register, then keep the registration alive; returns once fenced."""
        try:
            await self._claim(reregistration=False)
        except _FencedError as exc:
            self._fence(exc.other)
            task_status.started()
            return
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keepalive_loop)
            nursery.start_soon(self._sync_loop)
            nursery.start_soon(self._watch_own_key)
            await self.fenced.wait()
            nursery.cancel_scope.cancel()

    async def deregister(self) -> None:
        """Remove the record (revoke the lease) on a clean exit. Fenced: touches nothing."""
        if self.state == "fenced" or not self.lease:
            return
        self.state = "stopped"
        try:
            await self.client.txn(
                [Compare(self.key, "lease", "==", self.lease)],
                [Delete(self.key)],
            )
            await self.client.revoke(self.lease)
        except EtcdError as exc:
            log.warning("deregistering %s failed (lease will expire): %s",
                        self._record.node_id, exc)

    # -- internals --------------------------------------------------------------------------

    def _emit(self, event: RegistryEvent) -> None:
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(send)

    def _lose(self, reason: str) -> None:
        if not self._loss_counted:
            self.lease_losses += 1
            self._loss_counted = True
        self._emit(LeaseLost(reason))

    def _fence(self, other: NodeRecord) -> None:
        if self.state == "fenced":
            return
        log.warning(
            "node id %s claimed by a newer process (instance %s): no longer claiming it",
            self._record.node_id, other.instance,
        )
        self.state = "fenced"
        self._emit(Fenced(other.instance, other.started_at))
        self.fenced.set()

    def _is_newer(self, other: NodeRecord) -> bool:
        return other.instance != self._record.instance and (
            other.claim_order > self._record.claim_order
        )

    async def _retry(self) -> None:
        await trio.sleep(self.config.retry_delay)

    async def _claim(self, *, reregistration: bool) -> None:
        """Put our record under a valid lease, unless a newer process holds the id."""
        async with self._lock:
            while True:
                try:
                    if self._need_claim and self.lease:
                        # Keep a lease etcd still has: the rooms bound to it stay alive.
                        if await self.client.lease_ttl(self.lease) <= 0:
                            self.lease = 0
                        else:
                            reregistration = False
                    if not self.lease:
                        self.lease = await self.client.grant(self.config.ttl)
                    self._need_claim = False
                    kv = await self.client.get(self.key)
                    if kv is not None:
                        try:
                            other = NodeRecord.decode(kv.value)
                        except SchemaError:
                            other = None
                        if other is not None and self._is_newer(other):
                            raise _FencedError(other)
                        guard = Compare(self.key, "mod", "==", kv.mod_revision)
                    else:
                        guard = Compare(self.key, "version", "==", 0)
                    if kv is not None and _is_mine(kv.value, self._record):
                        self._adopt(kv.value)
                    record = self._record
                    result = await self.client.txn(
                        [guard], [Put(self.key, record.encode(), self.lease)]
                    )
                except EtcdUnavailable as exc:
                    log.debug("claim of %s uncertain: %s", self._record.node_id, exc)
                    await self._retry()
                    continue
                if result.succeeded:
                    self._mod = result.revision
                    self._last_ok = time.monotonic()
                    if record == self._record:
                        self._dirty = trio.Event()
                    else:
                        self._dirty.set()
                    self.state = "registered"
                    self.registered.set()
                    if reregistration:
                        # A lease found gone (key deleted, expired) without a LeaseLost
                        # before it is a loss too; count each loss once.
                        self.reregistrations += 1
                        self.lease_losses += not self._loss_counted
                    self._loss_counted = False
                    self._emit(Registered(self.lease, reregistration))
                    log.info("registered %s %s in %s (lease %x)", record.kind,
                             record.node_id, record.region, self.lease)
                    return
                # Somebody changed the key between our read and our write: read again.

    def _adopt(self, raw: bytes) -> None:
        """Merge flags set by others into our record (the drain flag is sticky)."""
        try:
            stored = NodeRecord.decode(raw)
        except SchemaError:
            return
        if stored.draining and not self._record.draining:
            self._record = self._record.with_changes(draining=True)
            self._emit(DrainRequested())

    async def _write(self) -> None:
        """Publish :attr:`record` under our lease, guarded by our last mod revision."""
        async with self._lock:
            while True:
                record = self._record
                try:
                    result = await self.client.txn(
                        [Compare(self.key, "mod", "==", self._mod),
                         Compare(self.key, "lease", "==", self.lease)],
                        [Put(self.key, record.encode(), self.lease)],
                        [Get(self.key)],
                    )
                except EtcdUnavailable:
                    await self._retry()
                    continue
                if result.succeeded:
                    self._mod = result.revision
                    if record == self._record:
                        self._dirty = trio.Event()
                    return
                current = result.ranges[0][0] if result.ranges and result.ranges[0] else None
                if current is None or current.lease != self.lease:
                    if current is not None:
                        try:
                            other = NodeRecord.decode(current.value)
                        except SchemaError:
                            other = None
                        if other is not None and self._is_newer(other):
                            raise _FencedError(other)
                    self._need_claim = current is None or current.lease != self.lease
                    return
                # Our key, our lease: an uncertain write of ours landed, or someone set a flag.
                self._mod = current.mod_revision
                self._adopt(current.value)
                if current.value == self._record.encode():
                    self._dirty = trio.Event()
                    return

    async def _sync_loop(self) -> None:
        while True:
            await self._dirty.wait()
            if self.state == "lost":
                await trio.sleep(self.config.retry_delay)
                continue
            wait = self._last_load_write + self.config.load_interval - time.monotonic()
            if wait > 0 and not self._need_claim:  # taking our key back is never delayed
                await trio.sleep(wait)
            try:
                await self._write()
                if self._need_claim:
                    await self._claim(reregistration=True)
            except _FencedError as exc:
                self._fence(exc.other)
                return
            self._last_load_write = time.monotonic()

    async def _keepalive_loop(self) -> None:
        failing = False
        while True:
            # After a failure, retry at once and often: an election or a dead endpoint must
            # not eat the lease's remaining TTL between two renewals.
            healthy = self.state == "registered" and not failing
            await trio.sleep(self.config.keepalive_interval if healthy
                             else self.config.retry_delay)
            try:
                ttl = await self.client.keepalive(self.lease)
                failing = False
            except EtcdError as exc:
                failing = True
                if (self.state == "registered"
                        and time.monotonic() - self._last_ok > self.config.ttl):
                    self.state = "lost"
                    self._lose(f"etcd unreachable for more than {self.config.ttl} s")
                    log.warning("lease of %s unconfirmed for > TTL: %s",
                                self._record.node_id, exc)
                continue
            # A live lease with a claim pending (our key deleted or taken while registered)
            # is no loss: the sync loop, already woken, takes the key back on this lease.
            if ttl > 0 and (not self._need_claim or self.state == "registered"):
                self._last_ok = time.monotonic()
                if self.state == "lost":
                    # etcd came back and kept our lease alive: make sure the record is there.
                    self.state = "registered"
                    self._loss_counted = False
                    self._dirty.set()
                continue
            if self.state == "registered":
                self._lose("lease expired")
            self.state = "lost"
            self._need_claim = True
            try:
                await self._claim(reregistration=True)
            except _FencedError as exc:
                self._fence(exc.other)
                return

    async def _watch_own_key(self) -> None:
        """See a newer claim or an operator's drain flag as soon as etcd has it.

        Each round reads the key at a revision, handles it like an event, then watches from
        the next revision; a compacted or broken watch simply starts another round.
        """
        while True:
            try:
                revision, kv = await self.client.get_with_revision(self.key)
                if kv is not None:
                    await self._on_own_events(
                        WatchBatch(revision, (WatchEvent("put", kv),)))
                elif self.state == "registered" and revision > self._mod:
                    self._need_claim = True
                    self._dirty.set()
                async with self.client.watch(self.key, start_revision=revision + 1,
                                             prefix=False) as items:
                    async for item in items:
                        if isinstance(item, WatchBatch):
                            await self._on_own_events(item)
            except EtcdError:
                pass
            await trio.sleep(self.config.retry_delay)

    async def _on_own_events(self, batch: WatchBatch) -> None:
        for event in batch.events:
            if event.type == "delete":
                if self.state == "registered" and event.kv.mod_revision > self._mod:
                    self._need_claim = True
                    self._dirty.set()
                continue
            try:
                other = NodeRecord.decode(event.kv.value)
            except SchemaError:
                continue
            if self._is_newer(other):
                self._fence(other)
                return
            if other.instance != self._record.instance:
                # An older process wrote our id (it saw the key absent): take it back.
                if self.state == "registered":
                    self._need_claim = True
                    self._dirty.set()
                continue
            if (event.kv.lease == self.lease and other.draining
                    and not self._record.draining):
                self._adopt(event.kv.value)
                self._dirty.set()


def _is_mine(value: bytes, record: NodeRecord) -> bool:
    """Whether a stored value is a record of this very process (an earlier claim of ours)."""
    try:
        return NodeRecord.decode(value).instance == record.instance
    except SchemaError:
        return False


def new_record(
    node_id: str,
    kind: schema.NodeKind,
    region: str,
    jurisdiction: str,
    *,
    addresses: tuple[schema.NodeAddress, ...] = (),
    capacity: int = 100,
    version: str = "0.1.0",
) -> NodeRecord:
    """A fresh record for this process (new instance id, start time now)."""
    return NodeRecord(
        node_id=node_id,
        kind=kind,
        region=region,
        jurisdiction=jurisdiction,
        addresses=addresses,
        capacity=capacity,
        load=0,
        draining=False,
        version=version,
        started_at=time.time(),
        instance=new_instance_id(),
    )
