"""TURN over TCP and TLS (RFC 8656 §3.1): one task per connection, frames through the codec's
:class:`~turn.stun.StreamReassembler`.

Hostile streams are contained per connection: a framing error (lengths 0xFFFD-0xFFFF, a byte
that starts neither STUN nor ChannelData, an oversized frame) closes that connection only; a
frame left incomplete for :data:`PARTIAL_FRAME_TIMEOUT` closes it (a stalled half frame would
otherwise pin the buffer forever); a connection that has no allocation after
:data:`UNALLOCATED_TIMEOUT` is closed (no slowloris on the accept path). Output to a client goes
through a bounded buffer drained by the connection's own writer task, so the relay loop never
waits on a slow TCP reader; past the bound, packets are dropped like UDP would drop them.
"""

from __future__ import annotations

import math
import ssl
from typing import Final

import trio

from turn.server.allocation import FiveTuple
from turn.server.driver_host import DriverHost
from turn.server.stream_connection import StreamConnection
from turn.stun import ChannelData, StreamReassembler, StunFramingError

PARTIAL_FRAME_TIMEOUT: Final = 10.0
UNALLOCATED_TIMEOUT: Final = 30.0
TLS_HANDSHAKE_TIMEOUT: Final = 10.0


def _peer_of(stream: trio.abc.Stream) -> tuple[tuple[str, int], tuple[str, int]]:
    inner = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
    sock = inner.socket  # type: ignore[union-attr]
    return sock.getpeername()[:2], sock.getsockname()[:2]


async def serve_connection(server: DriverHost, stream: trio.abc.Stream, protocol: str) -> None:
    """Run one TCP or TLS client connection until it closes or misbehaves."""
    core = server.core
    stats = core.stats
    try:
        client, local = _peer_of(stream)
    except OSError:
        await trio.aclose_forcefully(stream)
        return
    if isinstance(stream, trio.SSLStream):
        try:
            with trio.fail_after(TLS_HANDSHAKE_TIMEOUT):
                await stream.do_handshake()
        except (trio.TooSlowError, trio.BrokenResourceError, ssl.SSLError, OSError):
            stats.dropped["tls_handshake"] += 1
            await trio.aclose_forcefully(stream)
            return
    ft = FiveTuple(protocol, client, local)
    conn = StreamConnection(ft, stream)
    server.connections[ft] = conn
    try:
        with conn.scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conn.writer)
                await _read_loop(server, stream, ft)
                nursery.cancel_scope.cancel()
    finally:
        server.connections.pop(ft, None)
        core.connection_lost(ft, trio.current_time())
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)
            await server.flush()


async def _read_loop(server: DriverHost, stream: trio.abc.Stream, ft: FiveTuple) -> None:
    """Frames in until EOF, a framing error, a timeout or a broken connection."""
    core = server.core
    stats = core.stats
    reassembler = StreamReassembler(allow_rfc5766_range=core.config.rfc5766_channels)
    route = core.route_channel_data
    try:
        while True:
            if reassembler.buffered:
                timeout = PARTIAL_FRAME_TIMEOUT
            elif ft in core.allocations:
                timeout = math.inf
            else:
                timeout = UNALLOCATED_TIMEOUT
            with trio.move_on_after(timeout) as idle:
                data = await stream.receive_some(65536)
            if idle.cancelled_caught:
                stats.dropped["stream_timeout"] += 1
                return
            if not data:
                return
            now = trio.current_time()
            reassembler.receive_data(data)
            slow = False
            while (frame := reassembler.next_frame()) is not None:
                if type(frame) is ChannelData:
                    alloc = core.allocations.get(ft)
                    if alloc is None:
                        stats.dropped["no_allocation"] += 1
                        continue
                    binding = route(alloc, frame.channel, len(frame.data), now)
                    if binding is not None:
                        server.peer_write(binding.relay, frame.data, binding.peer)
                else:
                    server.receive(frame.data, ft, now)
                    slow = True
            if slow:
                await server.flush()
    except StunFramingError:
        stats.dropped["stream_framing"] += 1
    except (trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError, OSError):
        pass


__all__ = ["StreamConnection", "serve_connection"]
