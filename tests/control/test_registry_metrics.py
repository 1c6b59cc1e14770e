"""``regio_node_*`` metrics of a registration whose lease etcd revokes (real etcd)."""

from __future__ import annotations

import trio
from prometheus_client import CollectorRegistry, generate_latest

from control import schema
from control.etcd import EtcdClient
from control.registry import NodeRegistration, RegistryConfig, new_record
from control.registry_metrics import RegistrationCollector


async def test_revoked_lease_is_counted_then_reregistered(client: EtcdClient,
                                                          nursery: trio.Nursery) -> None:
    reg = NodeRegistration(client, new_record("m1", "turn", "eu-north", "EEA"),
                           RegistryConfig(ttl=2))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RegistrationCollector(reg))
    await nursery.start(reg.run)
    labels = 'kind="turn",region="eu-north"'
    text = generate_latest(registry).decode()
    assert f"regio_node_lease_losses_total{{{labels}}} 0.0" in text
    assert f'regio_node_registration_state{{{labels},state="registered"}} 1.0' in text
    first = reg.lease
    await client.revoke(first)  # what etcd does when a lease expires
    with trio.fail_after(20):
        while reg.reregistrations == 0:
            await trio.sleep(0.05)
    kv = await client.get(schema.node_key("m1"))
    assert kv is not None and kv.lease == reg.lease != first
    text = generate_latest(registry).decode()
    assert f"regio_node_lease_losses_total{{{labels}}} 1.0" in text
    assert f"regio_node_reregistrations_total{{{labels}}} 1.0" in text
    assert f'regio_node_registration_state{{{labels},state="lost"}} 0.0' in text
    await reg.deregister()
