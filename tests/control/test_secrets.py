"""Secrets against real etcd: rotation with overlap, picked up through the watch."""

from __future__ import annotations

import time

import trio

from control.etcd import EtcdClient
from control.secrets import SecretsView, ensure_secrets, key_bytes, rotate
from control.view import open_view


async def test_rotation_keeps_previous_key_for_overlap(client: EtcdClient,
                                                       nursery: trio.Nursery) -> None:
    initial = await ensure_secrets(client)
    again = await ensure_secrets(client)
    assert initial == again, "init is idempotent and never replaces a key"
    view = await open_view(client, nursery)
    secrets = SecretsView(view)
    first = secrets.current("turn")
    assert len(key_bytes(first)) == 32
    token_before = secrets.current("token")

    rotation = await rotate(client, "turn", overlap=1.5)
    assert rotation.previous == first.kid
    await view.wait_until(lambda: secrets.current("turn").kid == rotation.current, 5)
    valid = secrets.valid("turn")
    assert set(valid) == {first.kid, rotation.current}
    assert secrets.key("turn", first.kid) is not None
    assert secrets.current("token") == token_before, "--which turn leaves the token key alone"
    # After the overlap the old key is no longer accepted, the new one is.
    later = time.time() + 2.0
    assert set(secrets.valid("turn", now=later)) == {rotation.current}
    assert secrets.key("turn", first.kid, now=later) is None

    # A second rotation prunes expired keys and chains the overlap.
    await trio.sleep(1.6)
    second = await rotate(client, "turn", overlap=10)
    await view.wait_until(lambda: secrets.current("turn").kid == second.current, 5)
    assert set(secrets.valid("turn")) == {rotation.current, second.current}
    assert first.kid not in {k.kid for k in secrets.keyset("turn").keys}


async def test_concurrent_rotations_lose_no_key(client: EtcdClient) -> None:
    await ensure_secrets(client)
    results = []

    async def one() -> None:
        results.append(await rotate(client, "token", overlap=60))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(one)
    kv = await client.get("/regio/v1/cluster/secrets/token")
    assert kv is not None
    from control.schema import KeySet

    keyset = KeySet.decode(kv.value)
    kids = {k.kid for k in keyset.keys}
    assert {r.current for r in results} <= kids
    assert len(kids) == 6
