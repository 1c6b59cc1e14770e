"""A UDP probe run inside namespace hosts by the tests: counts what arrives between markers.

``recv PORT``: prints ``ready``, then counts ``data`` datagrams; on ``end:TAG`` prints ``TAG
COUNT`` and starts counting afresh. ``send HOST PORT COUNT [TAG]``: sends COUNT ``data``
datagrams, then ``end:TAG`` if a tag is given. Because the bridge keeps order, a marker sent
after an impairment is lifted arrives after everything that survived it: no sleeps needed.
"""

from __future__ import annotations

import socket
import sys


def receive(port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Big enough for every datagram of a test even if this process is not scheduled for a
    # while on a loaded machine: only the impairment under test may drop packets.
    sock.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE (root)
    sock.bind(("0.0.0.0", port))
    print("ready", flush=True)
    count = 0
    while True:
        data = sock.recv(2048)
        if data.startswith(b"end:"):
            print(f"{data[4:].decode()} {count}", flush=True)
            count = 0
        elif data.startswith(b"data"):
            count += 1


def send(host: str, port: int, count: int, tag: str | None) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"data" + bytes(200)
    for _ in range(count):
        sock.sendto(payload, (host, port))
    if tag is not None:
        sock.sendto(f"end:{tag}".encode(), (host, port))


if __name__ == "__main__":
    if sys.argv[1] == "recv":
        receive(int(sys.argv[2]))
    else:
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
             sys.argv[5] if len(sys.argv) > 5 else None)
