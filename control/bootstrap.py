"""Writing a cluster's shared state: the topology and the initial secrets.

``regio cluster init`` and ``regio cluster up`` both call :func:`init_cluster`. It is
idempotent: an identical topology is not rewritten (no revision churn, no watcher wake-ups) and
existing secrets are never replaced (that is what ``regio secrets rotate`` is for).
"""

from __future__ import annotations

from dataclasses import dataclass

from control import schema
from control.etcd import Compare, EtcdClient, Put
from control.secrets import ensure_secrets
from control.topology import Topology


@dataclass(frozen=True, slots=True)
class InitResult:
    """What :func:`init_cluster` changed."""

    topology_changed: bool
    secrets_created: tuple[str, ...]


async def init_cluster(client: EtcdClient, topology: Topology) -> InitResult:
    """Store ``topology`` (if different) and create missing secrets."""
    encoded = schema.encode_topology(topology.to_json())
    result = await client.txn(
        [Compare(schema.TOPOLOGY_KEY, "value", "==", encoded)],
        [],
        [Put(schema.TOPOLOGY_KEY, encoded)],
    )
    before = {kind for kind in schema.SECRET_KINDS
              if await client.get(schema.secrets_key(kind)) is not None}
    await ensure_secrets(client)
    created = tuple(k for k in schema.SECRET_KINDS if k not in before)
    return InitResult(not result.succeeded, created)
