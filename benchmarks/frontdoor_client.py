"""Join load generator for ``regio bench frontdoor``: keep-alive HTTP/1.1 over raw sockets.

One process, one selector loop, ``concurrency`` connections each with one request in flight
(no pipelining): the latency a connection sees is the front door's answer time plus this
loop's turn-around. Raw sockets rather than an HTTP library so the generator costs a few
microseconds per join and the front door, not the client, is what gets measured.

Client addresses come from :func:`benchmarks.geo_lookup.address_set` through
``X-Forwarded-For`` (the front door trusts 127.0.0.1 as a proxy), so every join does a real
GeoIP lookup of a different address. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from benchmarks import procstat
from benchmarks.geo_lookup import address_set


@dataclass(slots=True)
class _Conn:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    sent_at: float = 0.0


def request_bytes(host: str, room: str, address: str, body: bytes) -> bytes:
    return (f"POST /v1/rooms/{room}/join HTTP/1.1\r\nHost: {host}\r\n"
            f"X-Forwarded-For: {address}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` (None where there is no such process or no /proc)."""
    try:
        return procstat.process_cpu_seconds(pid)
    except (ProcessLookupError, OSError):
        return None


def _connect(host: str, port: int, tls: bool) -> socket.socket:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        sock = context.wrap_socket(sock, server_hostname=host)
    sock.setblocking(False)
    return sock


def _receive(sock: socket.socket) -> bytes | None:
    """What the socket has (b"" at EOF), None if a TLS record is still incomplete."""
    try:
        data = sock.recv(262144)
        if isinstance(sock, ssl.SSLSocket):
            while data and sock.pending():
                data += sock.recv(262144)
        return data
    except (ssl.SSLWantReadError, BlockingIOError):
        return None


def _response_end(buffer: bytearray) -> tuple[int, int] | None:
    """(status, total length) of a complete response at the start of ``buffer``."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end]).lower()
    at = head.find(b"content-length:")
    length = int(head[at + 15:head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None])
    total = head_end + 4 + length
    if len(buffer) < total:
        return None
    return int(head[9:12]), total


def run(url: str, concurrency: int, seconds: float, mode: str, rooms: int = 200,
        warmup: float = 1.0, server_pid: int | None = None) -> dict[str, object]:
    """Drive joins; ``mode`` ``existing`` (a fixed set of ``eea`` rooms, placed during
    warm-up) or ``new`` (every join names a new room). With ``server_pid``, the server's CPU
    time over the measured window is reported too (per join, and as a share of one core), as
    is this generator's: a busy shared machine lowers joins/s, CPU per join much less."""
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    addresses = [a for a in address_set() if not a.startswith("10.")]
    body_existing = b'{"policy":"eea","size":"large"}'
    body_new = b'{"size":"large"}'
    counter = 0
    run_id = f"{int(time.time()) % 100000}"

    def next_request() -> bytes:
        nonlocal counter
        counter += 1
        address = addresses[counter % len(addresses)]
        if mode == "new":
            return request_bytes(host, f"n{run_id}-{counter}", address, body_new)
        return request_bytes(host, f"bench-{counter % rooms}", address, body_existing)

    selector = selectors.DefaultSelector()
    conns: list[_Conn] = []
    for _ in range(concurrency):
        sock = _connect(host, port, tls)
        conn = _Conn(sock)
        conns.append(conn)
        selector.register(sock, selectors.EVENT_READ, conn)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    started = time.perf_counter()
    measure_from = started + warmup
    deadline = measure_from + seconds
    for conn in conns:
        conn.sent_at = time.perf_counter()
        conn.sock.sendall(next_request())
    done = 0
    measuring = False
    server_cpu = own_cpu = 0.0
    while True:
        now = time.perf_counter()
        if now >= deadline:
            break
        if not measuring and now >= measure_from:
            measuring = True
            server_cpu = (process_cpu_seconds(server_pid) or 0.0) if server_pid else 0.0
            own_cpu = time.process_time()
        for key, _ in selector.select(0.5):
            conn = key.data
            chunk = _receive(conn.sock)
            if chunk is None:
                continue
            if not chunk:
                raise RuntimeError("front door closed a keep-alive connection mid-run")
            conn.buffer += chunk
            end = _response_end(conn.buffer)
            if end is None:
                continue
            status, total = end
            del conn.buffer[:total]
            now = time.perf_counter()
            if now >= measure_from:
                latencies.append(now - conn.sent_at)
                statuses[status] += 1
                done += 1
            conn.sent_at = now
            conn.sock.sendall(next_request())
    elapsed = time.perf_counter() - measure_from
    own_cpu = time.process_time() - own_cpu
    server_after = process_cpu_seconds(server_pid) if server_pid else None
    server_cpu = server_after - server_cpu if server_after is not None else -1.0
    for conn in conns:
        conn.sock.close()
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000, 3)

    return {
        "mode": mode,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "joins": done,
        "joins_per_second": round(done / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": pct(0.50) if latencies else None,
        "p99_ms": pct(0.99) if latencies else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "server_cpu_percent": round(100 * server_cpu / elapsed, 1) if server_cpu >= 0 else None,
        "server_cpu_us_per_join": round(1e6 * server_cpu / done, 1)
        if server_cpu >= 0 and done else None,
        "generator_cpu_percent": round(100 * own_cpu / elapsed, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--mode", choices=["existing", "new"], default="existing")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--server-pid", type=int, help="report this process's CPU time")
    args = parser.parse_args()
    print(json.dumps(run(args.url, args.concurrency, args.seconds, args.mode,
                         warmup=args.warmup, server_pid=args.server_pid)))
