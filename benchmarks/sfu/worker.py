"""A load worker subprocess: ``python -m benchmarks.sfu.worker``, owning whole rooms.

JSON lines on stdin/stdout, so the parent needs no shared memory:

1. parent -> worker: a :class:`WorkerConfig`;
2. worker -> parent: ``{"ready": N}`` once its N media sockets are connected (or
   ``{"error": "..."}``);
3. parent -> worker: ``{"start_ns": T, "rate": F}``, the common ``CLOCK_MONOTONIC`` start
   instant and a factor on the configured rate (``--sweep`` steps; 1 otherwise);
4. worker -> parent: the :class:`~benchmarks.sfu.pump.PumpResult` fields;
5. 3 and 4 again for every further window on the same connections (``--sweep``);
6. parent closes stdin; the worker leaves (signaling ``leave``) and exits.

Owning whole rooms keeps each packet's sender and receivers in one process, so the payload
check needs no coordination.
"""

from __future__ import annotations

import gc
import json
import sys
from dataclasses import asdict, dataclass
from typing import Any

import trio

from benchmarks.sfu import meeting, pump, relay_clients, sfu_clients
from benchmarks.sfu.meeting import MeetingLoad
from benchmarks.sfu.sfu_clients import SetupError


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """One worker's share of the load."""

    mode: str
    """``sfu`` (signaling URL in ``target``), ``relay`` (``HOST:PORT``) or ``janus``
    (``URL|ADDRESS``, see :mod:`benchmarks.sfu.janus_proc`)."""
    target: str
    rooms: list[str]
    publishers: int
    subscribers: int
    pps: float
    seconds: float
    size: int
    seed: int = 0
    #: ``audio`` (paced fixed-size packets) or ``meeting`` (benchmarks.media, Chromium-shaped).
    load: str = "audio"
    #: ``meeting``: video bitrate per publisher, before the window's rate factor.
    video_kbps: float = 1500.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        return cls(**json.loads(text))


def _say(message: object) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _next_window() -> tuple[int, float] | None:
    line = sys.stdin.readline()
    if not line.strip():
        return None
    message = json.loads(line)
    return int(message["start_ns"]), float(message.get("rate", 1.0))


def _measure(config: WorkerConfig, participants: Any, timers: Any = None) -> bool:
    """Run one window per start message until the parent closes stdin (after its last CPU
    sample: teardown waits for it)."""
    meeting_load = config.load == "meeting"
    if meeting_load:
        senders, receivers = participants.meeting_senders, participants.meeting_receivers
    else:
        senders, receivers = participants.senders, participants.receivers
    if meeting_load:
        # Once per session, before any window: Linux turns stamping on asynchronously.
        for receiver in receivers:
            meeting.stamp_arrivals(receiver.sock)
    # The setup heap (Trio, the DTLS stack, every participant) lives until the end: out of the
    # cyclic collector's reach, as in the router (router.node.settle_heap), so a full
    # collection in the middle of a window does not show up as the server's latency.
    gc.collect()
    gc.freeze()
    _say({"ready": len(senders) + len(receivers)})
    windows = 0
    while (window := _next_window()) is not None:
        start, rate = window
        if meeting_load:
            load = MeetingLoad(video_bps=config.video_kbps * 1000 * rate)
            result = meeting.run(senders, receivers, start_ns=start, seconds=config.seconds,
                                 load=load, seed=config.seed, timers=timers)
        else:
            result = pump.run(senders, receivers, start_ns=start, seconds=config.seconds,
                              pps=config.pps * rate, size=config.size, timers=timers)
        _say(asdict(result))
        windows += 1
    return windows > 0


async def _run_sfu(config: WorkerConfig) -> int:
    try:
        if config.mode == "janus":
            from benchmarks.sfu import janus_clients

            participants = await janus_clients.setup(config.target, config.rooms,
                                                     config.publishers, config.subscribers,
                                                     seed=config.seed)
        else:
            participants = await sfu_clients.setup(config.target, config.rooms,
                                                   config.publishers, config.subscribers,
                                                   seed=config.seed,
                                                   meeting=config.load == "meeting")
    except (SetupError, OSError) as exc:
        _say({"error": str(exc)})
        return 1
    try:
        sfu_clients.bind_srtp(participants)
        # Synchronous on purpose: the pump must not yield per packet (see benchmarks.sfu.pump).
        ok = _measure(config, participants, participants.run_timers)
        return 0 if ok else 1
    finally:
        await participants.close()


def _run_relay(config: WorkerConfig) -> int:
    host, _, port = config.target.rpartition(":")
    try:
        participants = relay_clients.setup((host, int(port)), config.rooms, config.publishers,
                                           config.subscribers,
                                           meeting=config.load == "meeting")
    except (SetupError, OSError) as exc:
        _say({"error": str(exc)})
        return 1
    try:
        return 0 if _measure(config, participants) else 1
    finally:
        participants.close()


def main() -> int:
    config = WorkerConfig.from_json(sys.stdin.readline())
    if config.mode in ("sfu", "janus"):
        return trio.run(_run_sfu, config)
    return _run_relay(config)


if __name__ == "__main__":
    sys.exit(main())
