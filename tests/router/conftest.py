"""Fixtures: an in-process router on real loopback sockets (UDP + WebSocket), stopped by
cancellation, with its state counts available for leak checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio

from router.config import RouterConfig
from router.node import RouterNode
from tests.router.synth import KEY

StartRouter = Callable[..., Any]


@pytest.fixture
async def start_router(nursery: trio.Nursery) -> AsyncIterator[StartRouter]:
    scopes: list[trio.CancelScope] = []

    async def start(**overrides: Any) -> RouterNode:
        fields = {"region": "eu-west", "node_id": "r1", "listen": "127.0.0.1",
                  "signaling": "127.0.0.1:0", **overrides}
        config = RouterConfig(**fields)
        keys = {KEY.kid: KEY}
        node = RouterNode(config, lambda: keys, seed=1)
        scope = trio.CancelScope()
        scopes.append(scope)

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                async with trio.open_nursery() as inner:
                    await node.start(inner)
                    task_status.started()
            node.sock.close()

        await nursery.start(run)
        return node

    yield start
    for scope in scopes:
        scope.cancel()
