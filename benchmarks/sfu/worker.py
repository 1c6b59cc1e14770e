"""A load worker subprocess: ``python -m benchmarks.sfu.worker``, owning whole rooms.

JSON lines on stdin/stdout, so the parent needs no shared memory:

1. parent -> worker: a :class:`WorkerConfig`;
2. worker -> parent: ``{"ready": N}`` once its N media sockets are connected (or
   ``{"error": "..."}``);
3. parent -> worker: ``{"start_ns": T}``, the common ``CLOCK_MONOTONIC`` start instant;
4. worker -> parent: the :class:`~benchmarks.sfu.pump.PumpResult` fields;
5. parent closes stdin; the worker leaves (signaling ``leave``) and exits.

Owning whole rooms keeps each packet's sender and receivers in one process, so the payload
check needs no coordination.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from typing import Any

import trio

from benchmarks.sfu import pump, relay_clients, sfu_clients
from benchmarks.sfu.sfu_clients import SetupError


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """One worker's share of the load."""

    mode: str
    """``sfu`` (signaling URL in ``target``) or ``relay`` (``HOST:PORT`` in ``target``)."""
    target: str
    rooms: list[str]
    publishers: int
    subscribers: int
    pps: float
    seconds: float
    size: int
    seed: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        return cls(**json.loads(text))


def _say(message: object) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _start_ns() -> int | None:
    line = sys.stdin.readline()
    return int(json.loads(line)["start_ns"]) if line else None


def _measure(config: WorkerConfig, senders: list[pump.Sender], receivers: list[pump.Receiver],
             timers: Any = None) -> bool:
    _say({"ready": len(senders) + len(receivers)})
    start = _start_ns()
    if start is None:
        return False
    result = pump.run(senders, receivers, start_ns=start, seconds=config.seconds,
                      pps=config.pps, size=config.size, timers=timers)
    _say(asdict(result))
    sys.stdin.read()  # the parent closes stdin after its CPU sample: tear down only then
    return True


async def _run_sfu(config: WorkerConfig) -> int:
    try:
        participants = await sfu_clients.setup(config.target, config.rooms, config.publishers,
                                               config.subscribers, seed=config.seed)
    except (SetupError, OSError) as exc:
        _say({"error": str(exc)})
        return 1
    try:
        sfu_clients.bind_srtp(participants)
        # Synchronous on purpose: the pump must not yield per packet (see benchmarks.sfu.pump).
        ok = _measure(config, participants.senders, participants.receivers,
                      participants.run_timers)
        return 0 if ok else 1
    finally:
        await participants.close()


def _run_relay(config: WorkerConfig) -> int:
    host, _, port = config.target.rpartition(":")
    try:
        participants = relay_clients.setup((host, int(port)), config.rooms, config.publishers,
                                           config.subscribers)
    except (SetupError, OSError) as exc:
        _say({"error": str(exc)})
        return 1
    try:
        return 0 if _measure(config, participants.senders, participants.receivers) else 1
    finally:
        participants.close()


def main() -> int:
    config = WorkerConfig.from_json(sys.stdin.readline())
    if config.mode == "sfu":
        return trio.run(_run_sfu, config)
    return _run_relay(config)


if __name__ == "__main__":
    sys.exit(main())
