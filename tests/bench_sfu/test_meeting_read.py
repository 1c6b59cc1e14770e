"""The meeting load's read: both arrival stamps, on either read path (recvmmsg in the compiled
helper, recvmsg in Python), on real loopback sockets."""

from __future__ import annotations

import socket
import time

import pytest

from benchmarks.sfu import meeting
from router.transport import fastpath


@pytest.mark.parametrize("compiled", [True, False], ids=["recvmmsg", "recvmsg"])
def test_each_datagram_gets_its_kernel_stamp_before_its_read_stamp(
    compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if compiled:
        if not fastpath.enabled():
            pytest.fail("the compiled helper is part of the build: run `make setup`")
    else:
        monkeypatch.setattr(meeting, "_RECV_BATCH", None)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    meeting.stamp_arrivals(receiver)
    time.sleep(0.05)  # Linux turns stamping on for the first such socket asynchronously
    before = time.monotonic_ns()
    for i in range(200):  # several recvmmsg chunks, and within a default receive buffer
        sender.sendto(i.to_bytes(2, "big"), receiver.getsockname())
    time.sleep(0.01)  # the read comes visibly later than the arrivals
    view = memoryview(bytearray(2048))
    datagrams = meeting._read(receiver, receiver.fileno(), view)
    assert [int.from_bytes(d, "big") for d, _, _, _ in datagrams] == list(range(200))
    assert all(addr == sender.getsockname() for _, addr, _, _ in datagrams)
    queued = [q for _, _, _, q in datagrams]
    assert queued == sorted(queued)
    for _, _, arrived, stamp in datagrams:
        # Clock conversion (realtime to monotonic) is good to well under a millisecond.
        assert before - 1_000_000 <= stamp <= arrived
        assert arrived - stamp >= 5_000_000
    receiver.close()
    sender.close()


def test_without_stamping_the_read_time_stands_in() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.sendto(b"x", receiver.getsockname())
    time.sleep(0.01)
    [(data, _, arrived, queued)] = meeting._read(receiver, receiver.fileno(),
                                                 memoryview(bytearray(64)))
    assert data == b"x" and queued == arrived
    receiver.close()
    sender.close()
