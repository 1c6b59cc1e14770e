"""Secrets against real etcd: rotation with overlap, picked up through the watch; sealed at
rest with a key outside etcd, and every way of reading them without the right key refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import trio

from control import schema
from control.etcd import EtcdClient
from control.localetcd import LocalEtcd
from control.schema import KeySet
from control.secretbox import ENV_VAR, SecretsKeyError, write_key_file
from control.secrets import (
    SecretsView,
    ensure_secrets,
    key_bytes,
    new_key,
    read_keyset,
    require_secrets,
    rotate,
    seal_stored,
)
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
    keyset = await read_keyset(client, "token")
    assert keyset is not None
    kids = {k.kid for k in keyset.keys}
    assert {r.current for r in results} <= kids
    assert len(kids) == 6


# -- sealed at rest (issue 15 #9) ------------------------------------------------------------


async def test_secrets_are_sealed_in_etcd(client: EtcdClient) -> None:
    stored = await ensure_secrets(client)
    for kind, keyset in stored.items():
        kv = await client.get(schema.secrets_key(kind))
        assert kv is not None
        envelope = json.loads(kv.value)
        assert envelope["sealed"] == 1 and envelope["alg"] == "A256GCM"
        for key in keyset.keys:
            assert key.secret.encode() not in kv.value and key.kid.encode() not in kv.value


async def test_wrong_missing_or_clear_is_a_clear_error(
        etcd: LocalEtcd, client: EtcdClient, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, nursery: trio.Nursery) -> None:
    await ensure_secrets(client)
    other = write_key_file(tmp_path / "other.key")
    async with EtcdClient(etcd.config(secrets_key=str(other))) as wrong:
        with pytest.raises(SecretsKeyError, match="sealed with secrets key"):
            await read_keyset(wrong, "turn")
        view = await open_view(wrong, nursery)
        with pytest.raises(SecretsKeyError, match="sealed with secrets key"):
            require_secrets(view)
    monkeypatch.delenv(ENV_VAR)
    with pytest.raises(SecretsKeyError, match="--secrets-key"):
        await read_keyset(client, "turn")
    with pytest.raises(SecretsKeyError, match="--secrets-key"):
        await rotate(client, "turn")


async def test_clear_text_secret_is_refused_until_sealed(client: EtcdClient,
                                                         nursery: trio.Nursery) -> None:
    """A secret an older version wrote in clear is never used as is; `secrets seal` fixes it."""
    key = new_key()
    clear = KeySet("turn", key.kid, (key,))
    await client.put(schema.secrets_key("turn"), clear.encode())
    view = await open_view(client, nursery)
    with pytest.raises(SecretsKeyError, match="stored in clear"):
        view.keyset("turn")
    assert await seal_stored(client) == ["turn"]
    assert await read_keyset(client, "turn") == clear
    assert await seal_stored(client) == []


async def test_sealed_value_moved_to_another_key_does_not_open(client: EtcdClient) -> None:
    await ensure_secrets(client)
    turn = await client.get(schema.secrets_key("turn"))
    assert turn is not None
    await client.put(schema.secrets_key("token"), turn.value)
    with pytest.raises(SecretsKeyError, match="does not open"):
        await read_keyset(client, "token")
