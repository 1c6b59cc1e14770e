"""The cluster view: a watch cache of everything under ``/regio/v1/cluster/``.

The front door and the nodes decide from this cache, never from ad-hoc reads, so the rules that
keep it exact live here once:

* read everything at one revision R, then watch from R+1: no event between the read and the
  watch can be missed;
* a watch cancelled because R+1 was compacted (:class:`~control.etcd.WatchCompacted`), or a
  broken stream, means re-reading at one revision and diffing against the cache, emitting a
  delete for every key that vanished meanwhile: the view never keeps a node etcd deleted;
* while etcd is unreachable the last view keeps serving (the media plane never waits on etcd)
  and :meth:`WatchCache.age` says how long it has been unconfirmed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import trio

from control import schema
from control.etcd import EtcdClient, EtcdError, KeyValue, WatchBatch, WatchBroken, WatchCompacted
from control.logs import get_logger
from control.schema import KeySet, LinkRecord, NodeRecord, SchemaError, SecretKind
from control.secretbox import SecretBox, load_box
from control.topology import Topology

log = get_logger("control.view")


@dataclass(frozen=True, slots=True)
class ViewChange:
    """One change the cache applied; ``kv`` is the new value (None for deletes)."""

    type: Literal["put", "delete"]
    key: str
    kv: KeyValue | None
    revision: int


@dataclass(frozen=True, slots=True)
class ViewConfig:
    """Tuning of a watch cache."""

    retry_delay: float = 0.2
    """First pause before re-reading after etcd could not be reached."""
    max_retry_delay: float = 2.0
    """Longest pause between attempts while etcd stays unreachable."""


class WatchCache:
    """A consistent, self-healing copy of every key under ``prefix``."""

    def __init__(self, client: EtcdClient, prefix: str, config: ViewConfig | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.config = config or ViewConfig()
        self.items: dict[str, KeyValue] = {}
        self.revision = 0
        """etcd revision the cache reflects."""
        self.relists = 0
        """How many full re-reads happened (the first one included)."""
        self.compactions = 0
        """How many watches were cancelled because their revision was compacted."""
        self.failed_reads = 0
        """How many full re-reads failed because etcd could not be reached."""
        self.ready = trio.Event()
        """Set after the first full read."""
        self._connected = False
        self._stale_since = time.monotonic()
        self._changed = trio.Event()
        self._subscribers: list[trio.MemorySendChannel[ViewChange]] = []
        self.before_watch: Callable[[int], Awaitable[None]] | None = None
        """Awaited with the start revision before each watch opens. Tests use it to stall the
        watcher between its read and its watch, so history can be compacted meanwhile."""

    # -- reading ----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while a watch stream keeps the cache current."""
        return self._connected

    def age(self) -> float:
        """Seconds since the cache was last known to match etcd (0 while connected)."""
        return 0.0 if self._connected else time.monotonic() - self._stale_since

    def subscribe(self) -> trio.MemoryReceiveChannel[ViewChange]:
        """A channel of every change applied from now on (unbounded: never stalls the cache)."""
        send, recv = trio.open_memory_channel[ViewChange](math.inf)
        self._subscribers.append(send)
        return recv

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds after some change (raises TooSlowError)."""
        with trio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()

    # -- maintaining ------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the cache current forever; reports started after the first full read."""
        delay = self.config.retry_delay
        started = False
        while True:
            try:
                revision, kvs = await self.client.get_prefix(self.prefix)
            except EtcdError as exc:
                self.failed_reads += 1
                self._mark_stale(f"re-read failed: {exc}")
                await trio.sleep(delay)
                delay = min(delay * 2, self.config.max_retry_delay)
                continue
            delay = self.config.retry_delay
            self._apply_snapshot(revision, kvs)
            if not started:
                started = True
                task_status.started()
            await self._follow(revision + 1)

    async def _follow(self, start: int) -> None:
        if self.before_watch is not None:
            await self.before_watch(start)
        async with self.client.watch(self.prefix, start_revision=start) as items:
            self._connected = True
            async for item in items:
                match item:
                    case WatchBatch():
                        self._apply_batch(item)
                    case WatchCompacted(compact_revision=rev):
                        self.compactions += 1
                        log.info("watch on %s compacted at %d: re-reading", self.prefix, rev)
                        return
                    case WatchBroken(reason=reason):
                        self._mark_stale(reason)
                        await trio.sleep(self.config.retry_delay)
                        return
        self._mark_stale("watch ended")

    def _mark_stale(self, reason: str) -> None:
        if self._connected:
            log.warning("cluster view of %s unconfirmed: %s", self.prefix, reason)
            self._stale_since = time.monotonic()
        self._connected = False

    def _apply_snapshot(self, revision: int, kvs: Iterable[KeyValue]) -> None:
        self.relists += 1
        fresh = {kv.key: kv for kv in kvs}
        changes: list[ViewChange] = []
        for key in sorted(set(self.items) - set(fresh)):
            changes.append(ViewChange("delete", key, None, revision))
        for key, kv in fresh.items():
            old = self.items.get(key)
            if old is None or old.mod_revision != kv.mod_revision:
                changes.append(ViewChange("put", key, kv, revision))
        self.items = fresh
        self.revision = revision
        self._connected = True
        self._publish(changes)
        self.ready.set()

    def _apply_batch(self, batch: WatchBatch) -> None:
        changes: list[ViewChange] = []
        for event in batch.events:
            key = event.kv.key
            if event.type == "put":
                old = self.items.get(key)
                if old is not None and old.mod_revision >= event.kv.mod_revision:
                    continue
                self.items[key] = event.kv
                changes.append(ViewChange("put", key, event.kv, event.kv.mod_revision))
            elif self.items.pop(key, None) is not None:
                changes.append(ViewChange("delete", key, None, event.kv.mod_revision))
        self.revision = max(self.revision, batch.revision)
        self._connected = True
        self._publish(changes)

    def _publish(self, changes: list[ViewChange]) -> None:
        self._on_changes(changes)
        for change in changes:
            for send in list(self._subscribers):
                try:
                    send.send_nowait(change)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._subscribers.remove(send)
        self._changed.set()
        self._changed = trio.Event()

    def _on_changes(self, changes: list[ViewChange]) -> None:
        """Hook for subclasses keeping decoded indexes."""


class ClusterView(WatchCache):
    """The typed cluster view: nodes, topology and secrets, decoded once per change."""

    def __init__(self, client: EtcdClient, config: ViewConfig | None = None) -> None:
        super().__init__(client, schema.CLUSTER_PREFIX, config)
        self._nodes: dict[str, NodeRecord] = {}
        self._links: dict[tuple[str, str], LinkRecord] = {}
        self._box: SecretBox | None = None
        #: Opened key sets by etcd key, with the mod revision they were opened at.
        self._keysets: dict[str, tuple[int, KeySet]] = {}

    def _on_changes(self, changes: list[ViewChange]) -> None:
        for change in changes:
            node_id = schema.node_id_of(change.key)
            if node_id is None:
                self._on_link(change)
                continue
            if change.kv is None:
                self._nodes.pop(node_id, None)
                continue
            try:
                self._nodes[node_id] = NodeRecord.decode(change.kv.value)
            except SchemaError as exc:
                log.warning("ignoring node %s: %s", node_id, exc)
                self._nodes.pop(node_id, None)

    def _on_link(self, change: ViewChange) -> None:
        pair = schema.link_of(change.key)
        if pair is None:
            return
        if change.kv is None:
            self._links.pop(pair, None)
            return
        try:
            record = LinkRecord.decode(change.kv.value)
        except SchemaError as exc:
            log.warning("ignoring link %s -> %s: %s", *pair, exc)
            self._links.pop(pair, None)
            return
        if (record.src, record.dst) != pair:
            log.warning("ignoring link %s -> %s: the record names another link", *pair)
            self._links.pop(pair, None)
            return
        self._links[pair] = record

    def links(self) -> dict[tuple[str, str], LinkRecord]:
        """The link map: every router's probe figures by ``(src, dst)`` (a copy)."""
        return dict(self._links)

    def nodes(self) -> dict[str, NodeRecord]:
        """Every registered node by id (a copy)."""
        return dict(self._nodes)

    def node(self, node_id: str) -> NodeRecord | None:
        return self._nodes.get(node_id)

    def node_kv(self, node_id: str) -> KeyValue | None:
        """The raw key of a node: its lease and mod revision (placement binds to the lease)."""
        return self.items.get(schema.node_key(node_id))

    def available(self, kind: str, *, regions: Iterable[str] | None = None) -> list[NodeRecord]:
        """Nodes of ``kind`` that accept new work (not draining, below capacity), least loaded
        first; only in ``regions`` if given."""
        allowed = None if regions is None else set(regions)
        nodes = [
            n
            for n in self._nodes.values()
            if n.kind == kind
            and not n.draining
            and n.load < n.capacity
            and (allowed is None or n.region in allowed)
        ]
        return sorted(nodes, key=lambda n: (n.load_ratio, n.node_id))

    def topology(self) -> Topology | None:
        kv = self.items.get(schema.TOPOLOGY_KEY)
        if kv is None:
            return None
        try:
            return Topology.from_json(schema.decode_topology(kv.value))
        except (SchemaError, KeyError, TypeError, ValueError) as exc:
            log.warning("stored topology unusable: %s", exc)
            return None

    def keyset(self, which: SecretKind) -> KeySet | None:
        """The secret's key set; :class:`~control.secretbox.SecretsKeyError` when the secrets
        key is missing or wrong, or the value is stored in clear (never used as is)."""
        kv = self.items.get(schema.secrets_key(which))
        if kv is None:
            return None
        cached = self._keysets.get(kv.key)
        if cached is not None and cached[0] == kv.mod_revision:
            return cached[1]
        if self._box is None:
            self._box = load_box(self.client.config.secrets_key)
        plain = self._box.open(kv.key, kv.value)
        try:
            keyset = KeySet.decode(plain)
            self._keysets[kv.key] = (kv.mod_revision, keyset)
            return keyset
        except SchemaError as exc:
            log.warning("stored %s secrets unusable: %s", which, exc)
            return None


async def open_view(
    client: EtcdClient, nursery: trio.Nursery, config: ViewConfig | None = None
) -> ClusterView:
    """Start a :class:`ClusterView` in ``nursery`` and return it after its first full read."""
    view = ClusterView(client, config)
    await nursery.start(view.run)
    return view
