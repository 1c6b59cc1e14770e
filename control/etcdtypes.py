"""Plain value types of the etcd adapter: keys, transaction operations, watch items.

Kept apart from ``control.etcd`` so that code handling these records (the view, tests) reads
them without the gRPC plumbing, and so each module stays small.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pyetcd import etcdrpc


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key as etcd stores it; ``lease`` is 0 for keys without a lease."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def from_pb(cls, kv: Any) -> KeyValue:
        return cls(
            kv.key.decode("utf-8", "replace"),
            bytes(kv.value),
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.lease,
        )


CompareTarget = Literal["version", "create", "mod", "value", "lease"]
CompareOp = Literal["==", "!=", "<", ">"]
_CMP_RESULT = {
    "==": etcdrpc.Compare.EQUAL,
    "!=": etcdrpc.Compare.NOT_EQUAL,
    "<": etcdrpc.Compare.LESS,
    ">": etcdrpc.Compare.GREATER,
}


@dataclass(frozen=True, slots=True)
class Compare:
    """A transaction guard such as ``Compare(key, "mod", "==", 42)``."""

    key: str
    target: CompareTarget
    op: CompareOp
    value: int | bytes

    def to_pb(self) -> Any:
        cmp = etcdrpc.Compare(key=self.key.encode(), result=_CMP_RESULT[self.op])
        if self.target == "value":
            cmp.target = etcdrpc.Compare.VALUE
            cmp.value = self.value if isinstance(self.value, bytes) else str(self.value).encode()
        else:
            cmp.target = {
                "version": etcdrpc.Compare.VERSION,
                "create": etcdrpc.Compare.CREATE,
                "mod": etcdrpc.Compare.MOD,
                "lease": etcdrpc.Compare.LEASE,
            }[self.target]
            setattr(cmp, {"create": "create_revision", "mod": "mod_revision"}.get(
                self.target, self.target), int(self.value))
        return cmp


@dataclass(frozen=True, slots=True)
class Put:
    """Transaction operation: write ``value`` (bound to ``lease`` unless 0)."""

    key: str
    value: bytes
    lease: int = 0
    ignore_lease: bool = False
    """Keep whatever lease the key already has (etcd >= 3.3)."""


@dataclass(frozen=True, slots=True)
class Delete:
    """Transaction operation: delete a key, or every key under a prefix."""

    key: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class Get:
    """Transaction operation: read a key, or every key under a prefix."""

    key: str
    prefix: bool = False


Op = Put | Delete | Get


@dataclass(frozen=True, slots=True)
class TxnResult:
    """What a transaction did: which branch ran, at which revision, and its ``Get`` results."""

    succeeded: bool
    revision: int
    ranges: tuple[tuple[KeyValue, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """One endpoint's view of the cluster, from the Maintenance ``Status`` call."""

    endpoint: str
    member_id: int
    leader_id: int
    raft_term: int
    revision: int


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change; for a delete, ``kv.value`` is empty and ``kv.mod_revision`` is the delete's."""

    type: Literal["put", "delete"]
    kv: KeyValue


@dataclass(frozen=True, slots=True)
class WatchBatch:
    """Events of one watch response (possibly none: a progress notification at ``revision``)."""

    revision: int
    events: tuple[WatchEvent, ...]


@dataclass(frozen=True, slots=True)
class WatchCompacted:
    """The watch's start revision was compacted away: re-list and watch again."""

    compact_revision: int


@dataclass(frozen=True, slots=True)
class WatchBroken:
    """The stream ended (member down, leader lost, connection reset): re-list and watch again."""

    reason: str


WatchItem = WatchBatch | WatchCompacted | WatchBroken
