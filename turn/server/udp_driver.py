"""The UDP hot loops: client listeners and the relay set.

Both loops wait for readability once (``trio.lowlevel.wait_readable``), then drain plain
non-blocking sockets with ``recvfrom_into`` into one preallocated buffer until
``BlockingIOError`` (or a fairness cap), and send with non-blocking ``sendto``, awaiting
writability only when the kernel pushes back. ChannelData never builds an object: the channel
and length are read from the buffer, two dict lookups find the binding, and a memoryview slice
goes to ``sendto``. Peer data to a channel is received 4 bytes into the buffer so the
ChannelData header is written in front of it and the whole frame leaves with one ``sendto``,
no copy. Only STUN (control traffic) takes the core's general path.
"""

from __future__ import annotations

import socket
from typing import Final

import trio

from turn.server.allocation import Addr, FiveTuple
from turn.server.driver_host import DriverHost
from turn.server.relay import UdpRelayPool
from turn.stun import encode_channel_data

#: Datagrams taken from one socket per wake-up before the others get their turn.
BATCH: Final = 256
RELAY_BATCH: Final = 64


async def send_udp(sock: socket.socket, data: bytes | memoryview, addr: Addr) -> bool:
    """Non-blocking send that awaits writability only when the kernel pushes back."""
    try:
        sock.sendto(data, addr)
        return True
    except BlockingIOError:
        pass
    except OSError:
        return False
    await trio.lowlevel.wait_writable(sock)
    try:
        sock.sendto(data, addr)
        return True
    except OSError:
        return False


async def client_listener_loop(server: DriverHost, sock: socket.socket) -> None:
    """Serve one UDP listener: ChannelData straight to the relay, STUN to the core."""
    core = server.core
    server_addr: Addr = sock.getsockname()[:2]
    table = core.udp_tables.setdefault(server_addr, {})
    v6 = sock.family == socket.AF_INET6
    buf = bytearray(65536)
    view = memoryview(buf)
    recv = sock.recvfrom_into
    route = core.route_channel_data
    wait_readable = trio.lowlevel.wait_readable
    current_time = trio.current_time
    stats = core.stats
    while True:
        await wait_readable(sock)
        now = current_time()
        slow = False
        for _ in range(BATCH):
            try:
                n, addr = recv(buf)
            except BlockingIOError:
                break
            except OSError:
                continue  # an ICMP error queued on the socket; nothing to read
            if v6:
                addr = addr[:2]
            if n >= 4 and 0x40 <= buf[0] <= 0x7F:
                alloc = table.get(addr)
                if alloc is not None:
                    length = buf[2] << 8 | buf[3]
                    if 0 <= n - 4 - length <= 3:
                        binding = route(alloc, buf[0] << 8 | buf[1], length, now)
                        if binding is not None:
                            out = binding.relay.sock  # type: ignore[attr-defined]
                            try:
                                out.sendto(view[4 : 4 + length], binding.peer)
                            except BlockingIOError:
                                await send_udp(out, bytes(view[4 : 4 + length]), binding.peer)
                            except OSError:
                                stats.dropped["send_error"] += 1
                    else:
                        stats.dropped["malformed"] += 1
                    continue
            server.receive(bytes(view[:n]), FiveTuple("udp", addr, server_addr), now)
            slow = True
        if slow:
            await server.flush()


async def relay_loop(server: DriverHost, pool: UdpRelayPool) -> None:
    """Serve every relay socket through one epoll set."""
    core = server.core
    epoll = pool.epoll
    by_fd = pool.by_fd
    udp_sockets = server.udp_sockets
    rfc5766 = core.config.rfc5766_channels
    buf = bytearray(65536 + 4)
    view = memoryview(buf)
    body = view[4:]
    route = core.route_from_peer
    wait_readable = trio.lowlevel.wait_readable
    current_time = trio.current_time
    stats = core.stats
    epoll_fd = epoll.fileno()
    while True:
        await wait_readable(epoll_fd)
        now = current_time()
        slow = False
        for fd, _mask in epoll.poll(0):
            relay = by_fd.get(fd)
            if relay is None:
                continue
            recv = relay.sock.recvfrom_into
            v6 = relay.family == 6
            for _ in range(RELAY_BATCH):
                try:
                    n, peer = recv(body)
                except BlockingIOError:
                    break
                except OSError:
                    continue
                if v6:
                    peer = peer[:2]
                channel = route(relay, peer, n, now)
                if channel < 0:
                    continue
                alloc = relay.allocation
                if alloc is None:
                    continue
                ft = alloc.five_tuple
                if channel and ft.protocol == "udp":
                    buf[0] = channel >> 8
                    buf[1] = channel & 0xFF
                    buf[2] = n >> 8
                    buf[3] = n & 0xFF
                    out = udp_sockets.get(ft.server)
                    if out is None:
                        continue
                    try:
                        out.sendto(view[: 4 + n], ft.client)
                    except BlockingIOError:
                        await send_udp(out, bytes(view[: 4 + n]), ft.client)
                    except OSError:
                        stats.dropped["send_error"] += 1
                elif channel:
                    server.stream_write(
                        ft, encode_channel_data(channel, body[:n], pad=True,
                                                allow_rfc5766_range=rfc5766))
                else:
                    server.client_write(ft, core.data_indication(bytes(body[:n]), peer))
                    slow = True
        if slow:
            await server.flush()


__all__ = ["BATCH", "client_listener_loop", "relay_loop", "send_udp"]
