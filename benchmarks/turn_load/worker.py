"""A load worker subprocess: ``python -m benchmarks.turn_load.worker``.

Line protocol on stdin/stdout (JSON, one object a line), so the parent needs no shared memory:

1. parent -> worker: a :class:`WorkerConfig`;
2. worker -> parent: ``{"ready": N}`` once its N allocations are bound, or ``{"error": "..."}``;
3. parent -> worker: ``{"start_ns": T}``, the common ``CLOCK_MONOTONIC`` start instant;
4. worker -> parent: the :class:`PumpResult` fields after the send window and drain;
5. parent closes stdin; the worker deletes its allocations and exits.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from benchmarks.turn_load import pump
from benchmarks.turn_load.session import LoadError, Session, WorkerConfig


def _say(message: object) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> int:
    config = WorkerConfig.from_json(sys.stdin.readline())
    session = Session(config)
    try:
        try:
            session.setup()
        except LoadError as exc:
            _say({"error": str(exc)})
            return 1
        _say({"ready": len(session.clients)})
        line = sys.stdin.readline()
        if not line:
            return 1
        start_ns = int(json.loads(line)["start_ns"])
        result = pump.run(session, start_ns, config.seconds, config.pps, config.size)
        _say(asdict(result))
        sys.stdin.read()  # wait for the parent to close stdin: teardown after its CPU sample
        return 0
    finally:
        session.close()


if __name__ == "__main__":
    sys.exit(main())
