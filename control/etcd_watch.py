"""One etcd watch: a gRPC stream on a thread of its own, bridged into a Trio memory channel
(control/etcd.py's ``EtcdClient.watch`` starts and stops it).

Why a thread per watch: pyetcd's gRPC streams block, and its own watch helper hides
``compact_revision`` behind a callback error. Here every response becomes a
:class:`~control.etcdtypes.WatchBatch`, and a compaction or a broken stream ends the channel
with :class:`~control.etcdtypes.WatchCompacted` or :class:`~control.etcdtypes.WatchBroken`,
so callers handle both explicitly. A slow Trio reader stalls the stream (the thread waits in
``trio.from_thread.run``) rather than losing events.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import trio
from pyetcd import etcdrpc

from control.etcdtypes import (
    KeyValue,
    WatchBatch,
    WatchBroken,
    WatchCompacted,
    WatchEvent,
    WatchItem,
)


@dataclass
class WatchStream:
    """One gRPC watch stream on its own thread, feeding a Trio channel."""

    stub: Any
    """The connection's etcd Watch service stub."""
    endpoint_url: str
    """Where it goes, for the message when the stream breaks."""
    create: Any
    send: trio.MemorySendChannel[WatchItem]
    token: trio.lowlevel.TrioToken
    _requests: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    _call: Any = None
    _stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._requests.put(etcdrpc.WatchRequest(create_request=self.create))
        threading.Thread(target=self._run, name="regio-etcd-watch", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        self._requests.put(None)
        call = self._call
        if call is not None:
            call.cancel()

    def _request_iter(self) -> Iterator[Any]:
        while True:
            item = self._requests.get()
            if item is None:
                return
            yield item

    def _deliver(self, item: WatchItem) -> bool:
        if self._stopped.is_set():
            return False
        try:
            trio.from_thread.run(self.send.send, item, trio_token=self.token)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.RunFinishedError):
            return False
        except trio.Cancelled:  # pragma: no cover - the Trio side is going away
            return False
        return True

    def _finish(self, item: WatchItem) -> None:
        self._deliver(item)
        with contextlib.suppress(trio.RunFinishedError):
            trio.from_thread.run_sync(self.send.close, trio_token=self.token)

    def _run(self) -> None:
        try:
            self._call = self.stub.Watch(
                self._request_iter(), metadata=(("hasleader", "true"),)
            )
            if self._stopped.is_set():
                self._call.cancel()
            for resp in self._call:
                if resp.compact_revision:
                    self._finish(WatchCompacted(int(resp.compact_revision)))
                    return
                if resp.canceled:
                    self._finish(WatchBroken(f"watch cancelled: {resp.cancel_reason or '?'}"))
                    return
                if resp.created and not resp.events:
                    continue
                events = tuple(
                    WatchEvent(
                        "delete" if ev.type == 1 else "put", KeyValue.from_pb(ev.kv)
                    )
                    for ev in resp.events
                )
                if not self._deliver(WatchBatch(int(resp.header.revision), events)):
                    return
            self._finish(WatchBroken("watch stream ended"))
        except grpc.RpcError as exc:
            if not self._stopped.is_set():
                code = exc.code()
                self._finish(WatchBroken(f"{self.endpoint_url}: {code.name.lower()}"))
        except Exception as exc:  # a thread must report, never die silently
            self._finish(WatchBroken(f"watch thread failed: {exc!r}"))
        finally:
            self._stopped.set()
            self._requests.put(None)


__all__ = ["WatchStream"]
