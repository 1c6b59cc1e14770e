"""The media driver's wait past Trio's scheduler (router/transport/direct_wait.py).

Each test runs its own ``trio.run`` on the system clock (the direct wait refuses mock clocks)
with real loopback sockets. What must hold: the driver skips the scheduler only when its socket
alone is ready and it is alone in its batch; any other task that is runnable, resumed with it,
waiting on I/O, on a deadline, on idleness or on a thread gets the loop back; and the driver
under a steady flood still lets every other task run.
"""

from __future__ import annotations

import socket
import threading
import time

import trio
import trio.testing

from router.transport.direct_wait import DIRECT_SPAN, DirectWait, direct_wait
from router.transport.udp_driver import UdpDriver
from tests.transport.test_udp_driver import _Echo


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def _installed(wait: DirectWait) -> bool:
    from trio._core._run import GLOBAL_RUN_CONTEXT

    return wait in GLOBAL_RUN_CONTEXT.runner.instruments["_all"]


async def _through_trio(wait: DirectWait, sock: socket.socket) -> None:
    """Wait as the driver does when ready() says no."""
    await trio.lowlevel.wait_readable(sock)
    wait.scheduled()


async def _one_through_trio(
    wait: DirectWait, media: socket.socket, sender: socket.socket, *, drain: bool = True
) -> None:
    """A datagram waited for through Trio (the next ready() starts from a fresh batch)."""
    sender.sendto(b"m", media.getsockname())
    await _through_trio(wait, media)
    if drain:
        media.recv(10)


def test_refused_outside_a_run_and_under_a_mock_clock() -> None:
    media = _socket()
    assert direct_wait(media.fileno()) is None

    async def main() -> None:
        assert direct_wait(media.fileno()) is None

    trio.run(main, clock=trio.testing.MockClock())
    media.close()


def test_the_media_socket_alone_skips_the_scheduler() -> None:
    media, sender = _socket(), _socket()

    async def main() -> None:
        wait = direct_wait(media.fileno())
        assert wait is not None and _installed(wait)
        assert not wait.ready()  # nothing is known yet: the first wait goes through Trio
        sender.sendto(b"a", media.getsockname())
        await _through_trio(wait, media)
        media.recv(10)
        sender.sendto(b"b", media.getsockname())
        assert wait.ready()  # alone in its batch, only the socket ready: no scheduler
        media.recv(10)
        threading.Timer(0.02, sender.sendto, (b"c", media.getsockname())).start()
        assert wait.ready()  # blocked in poll() until the datagram came
        assert media.recv(10) == b"c"
        assert (wait.direct, wait.through_trio) == (2, 1)
        trio.lowlevel.remove_instrument(wait)

    trio.run(main)
    media.close()
    sender.close()


def test_a_task_resumed_in_the_same_batch_gets_the_loop_back() -> None:
    media, other, sender = _socket(), _socket(), _socket()
    ran: list[str] = []

    async def main() -> None:
        wait = direct_wait(media.fileno())
        assert wait is not None

        async def other_task() -> None:
            await trio.lowlevel.wait_readable(other)
            ran.append("other")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(other_task)
            await trio.testing.wait_all_tasks_blocked()
            # Both ready before Trio's next epoll round: both tasks resume in one batch.
            sender.sendto(b"m", media.getsockname())
            sender.sendto(b"o", other.getsockname())
            await _through_trio(wait, media)
            media.recv(10)
            sender.sendto(b"m2", media.getsockname())
            # Whether or not the other task ran first in the batch, the driver must not go on
            # past the scheduler: it was not alone.
            assert not wait.ready()
            await _through_trio(wait, media)
            assert ran == ["other"]
        trio.lowlevel.remove_instrument(wait)

    trio.run(main)
    for sock in (media, other, sender):
        sock.close()


def test_other_io_deadlines_threads_and_idle_waiters_get_the_loop_back() -> None:
    media, other, sender = _socket(), _socket(), _socket()

    async def main() -> None:
        wait = direct_wait(media.fileno())
        assert wait is not None
        await _one_through_trio(wait, media, sender)

        async with trio.open_nursery() as nursery:
            # Another socket becomes readable while the driver is in poll().
            got = trio.Event()

            async def reader() -> None:
                await trio.lowlevel.wait_readable(other)
                got.set()

            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            await _one_through_trio(wait, media, sender)  # alone again: the reader is blocked
            threading.Timer(0.02, sender.sendto, (b"o", other.getsockname())).start()
            assert not wait.ready()  # Trio's epoll descriptor turned readable
            await got.wait()
            other.recv(10)

            # A deadline comes due while the driver is in poll().
            woke = trio.Event()

            async def sleeper() -> None:
                await trio.sleep(0.02)
                woke.set()

            nursery.start_soon(sleeper)
            await trio.testing.wait_all_tasks_blocked()
            await _one_through_trio(wait, media, sender)
            assert not wait.ready()  # poll() timed out at the sleeper's deadline
            await woke.wait()

            # A thread hands Trio work while the driver is in poll().
            token = trio.lowlevel.current_trio_token()
            called = trio.Event()
            await _one_through_trio(wait, media, sender)
            threading.Timer(0.02, token.run_sync_soon, (called.set,)).start()
            assert not wait.ready()
            await called.wait()

            # A task runnable now.
            await _one_through_trio(wait, media, sender)
            nursery.start_soon(trio.sleep, 0)
            assert not wait.ready()

            # A task waiting for every other task to block (trio.testing's idle waiters).
            nursery.start_soon(trio.testing.wait_all_tasks_blocked)
            sender.sendto(b"m", media.getsockname())
            await trio.lowlevel.checkpoint()  # the waiter registers
            await _through_trio(wait, media)
            media.recv(10)
            assert not wait.ready()
        trio.lowlevel.remove_instrument(wait)

    trio.run(main)
    for sock in (media, other, sender):
        sock.close()


def test_a_socket_closed_under_the_wait_goes_through_trio() -> None:
    media, sender = _socket(), _socket()

    async def main() -> None:
        wait = direct_wait(media.fileno())
        assert wait is not None
        await _one_through_trio(wait, media, sender, drain=False)
        media.close()  # poll() reports POLLNVAL: never "readable", so never a busy loop
        assert not wait.ready()
        trio.lowlevel.remove_instrument(wait)

    trio.run(main)
    sender.close()


def test_the_driver_goes_through_trio_at_least_every_span() -> None:
    media, sender = _socket(), _socket()

    async def main() -> None:
        wait = direct_wait(media.fileno())
        assert wait is not None
        await _one_through_trio(wait, media, sender, drain=False)
        start = time.monotonic()
        # The socket stays readable (never drained): ready() says yes until the span is over.
        while wait.ready():
            assert time.monotonic() - start < 10 * DIRECT_SPAN + 5
        assert time.monotonic() - start >= DIRECT_SPAN * 0.9
        trio.lowlevel.remove_instrument(wait)

    trio.run(main)
    media.close()
    sender.close()


def test_a_flooded_driver_lets_every_other_task_run() -> None:
    """A datagram every ~0.2 ms for a second; meanwhile a sleeper ticks, another socket is read
    and a thread calls in. All of them make progress, and the driver did skip the scheduler."""
    server, other, feeder = _socket(), _socket(), _socket()
    core = _Echo()
    stop = threading.Event()

    def flood() -> None:
        target = server.getsockname()
        while not stop.is_set():
            feeder.sendto(b"x" * 1000, target)
            time.sleep(0.0002)

    ticks = [0]
    other_seen = [0]
    calls = [0]

    async def main() -> None:
        driver = UdpDriver(server, core, lambda: None)

        async def sleeper() -> None:
            while True:
                await trio.sleep(0.005)
                ticks[0] += 1

        async def other_reader() -> None:
            while True:
                await trio.lowlevel.wait_readable(other)
                other.recv(10)
                other_seen[0] += 1

        def call_in(token: trio.lowlevel.TrioToken) -> None:
            for _ in range(20):
                trio.from_thread.run_sync(lambda: calls.__setitem__(0, calls[0] + 1),
                                          trio_token=token)
                feeder.sendto(b"o", other.getsockname())
                time.sleep(0.03)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(driver.run)
            nursery.start_soon(sleeper)
            nursery.start_soon(other_reader)
            threading.Thread(target=flood, daemon=True).start()
            await trio.to_thread.run_sync(call_in, trio.lowlevel.current_trio_token())
            stop.set()
            with trio.fail_after(5):
                while other_seen[0] < 20:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
        assert driver.direct is not None and driver.direct.direct > 0
        assert not _installed(driver.direct)  # removed when the driver stopped
        assert driver.datagrams_in > 100

    trio.run(main)
    assert calls[0] == 20 and other_seen[0] == 20
    assert ticks[0] >= 20  # ~120 in 0.6 s; the bound only says the sleeper was not starved
    for sock in (server, other, feeder):
        sock.close()
