"""Orchestration of one load run: workers, a common start instant, server CPU, aggregation.

With one worker everything runs in this process. With ``--workers N`` each worker is a
``python -m benchmarks.turn_load.worker`` subprocess owning whole pairs (so each packet's sender
and receiver share a process and its bitmap); they set up their allocations, report ready, and
all start sending at one ``CLOCK_MONOTONIC`` instant chosen here (the clock is system-wide, so it
means the same in every process). Server CPU is sampled from ``/proc`` at that instant and again
once every worker has drained, which is the window the relayed packets were handled in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks import procstat
from benchmarks.turn_load import netstat
from benchmarks.turn_load.pump import PumpResult
from benchmarks.turn_load.servers import REPO_ROOT
from benchmarks.turn_load.session import LoadError, WorkerConfig

#: Workers set up, then everyone starts this long after the last one reported ready.
START_DELAY = 0.2


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """One ``regio bench turn`` run as the operator asked for it."""

    host: str
    port: int
    secret: str
    realm: str | None = None
    region: str | None = None
    pairs: int = 2
    pps: float = 1000.0
    seconds: float = 5.0
    size: int = 200
    workers: int = 1
    server_pid: int | None = None


@dataclass(slots=True)
class LoadReport:
    """The figures of one run; :meth:`as_json` is what ``--json`` prints."""

    target: str
    server: str | None
    pairs: int
    workers: int
    size: int
    target_pps: float
    seconds: float
    sent: int
    delivered: int
    lost: int
    loss_pct: float
    duplicates: int
    send_errors: int
    achieved_pps: float
    delivered_pps: float
    send_window_s: float
    latency_p50_us: float | None
    latency_p99_us: float | None
    latency_max_us: float | None
    server_pid: int | None
    server_cpu_s: float | None
    server_cpu_pct: float | None
    server_cpu_us_per_packet: float | None
    generator_cpu_s: float
    generator_cpu_pct: float
    generator_worker_cpu_pct_max: float
    #: Receive-buffer overflows on the generator's sockets (the generator fell behind).
    generator_rcvbuf_drops: int
    #: Receive-buffer overflows on every other UDP socket of the host (on a quiet benchmark
    #: host: the server's), during the send window and drain.
    other_rcvbuf_drops: int
    #: CPU other processes used meanwhile (host busy time minus server and generator), % of
    #: one core: a shared machine's noise, which makes every other figure less trustworthy.
    other_cpu_pct: float | None
    control_failures: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def split_pairs(pairs: int, workers: int) -> list[int]:
    """Pairs per worker, as even as possible; every worker gets at least one."""
    base, extra = divmod(pairs, workers)
    return [base + (1 if i < extra else 0) for i in range(workers)]


def _percentile(histogram: dict[int, int], fraction: float) -> float | None:
    total = sum(histogram.values())
    if not total:
        return None
    rank = max(1, round(fraction * total))
    running = 0
    for value in sorted(histogram):
        running += histogram[value]
        if running >= rank:
            return float(value)
    return float(max(histogram))


#: (server tree CPU seconds or None, host busy CPU seconds), sampled at the window's edges.
Sample = tuple[float | None, float]


def _server_cpu(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return procstat.process_tree_cpu_seconds(pid)
    except ProcessLookupError as exc:
        raise LoadError(f"--server-pid {pid}: no such process") from exc


def _sample(pid: int | None) -> Sample:
    return _server_cpu(pid), procstat.host_busy_cpu_seconds()


def _run_in_process(
    config: WorkerConfig, server_pid: int | None
) -> tuple[list[PumpResult], int, Sample, Sample]:
    from benchmarks.turn_load import pump
    from benchmarks.turn_load.session import Session

    session = Session(config)
    try:
        session.setup()
        start_ns = time.monotonic_ns() + int(START_DELAY * 1e9)
        _sleep_until(start_ns)
        cpu0 = _sample(server_pid)
        result = pump.run(session, start_ns, config.seconds, config.pps, config.size)
        cpu1 = _sample(server_pid)
        return [result], start_ns, cpu0, cpu1
    finally:
        session.close()


def _sleep_until(deadline_ns: int) -> None:
    while (left := deadline_ns - time.monotonic_ns()) > 0:
        time.sleep(left / 1e9)


def _read_message(process: subprocess.Popen[str], what: str) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=5)
        raise LoadError(f"a load worker exited (status {process.returncode}) during {what}")
    message: dict[str, Any] = json.loads(line)
    if "error" in message:
        raise LoadError(message["error"])
    return message


def _run_subprocesses(
    configs: list[WorkerConfig], server_pid: int | None
) -> tuple[list[PumpResult], int, Sample, Sample]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    processes: list[subprocess.Popen[str]] = []
    try:
        for config in configs:
            process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.turn_load.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
                cwd=REPO_ROOT,
            )
            processes.append(process)
            assert process.stdin is not None
            process.stdin.write(config.to_json() + "\n")
            process.stdin.flush()
        for process in processes:
            _read_message(process, "setup")
        start_ns = time.monotonic_ns() + int(START_DELAY * 1e9)
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(json.dumps({"start_ns": start_ns}) + "\n")
            process.stdin.flush()
        _sleep_until(start_ns)
        cpu0 = _sample(server_pid)
        results = [PumpResult(**_read_message(p, "the send window")) for p in processes]
        cpu1 = _sample(server_pid)
        for process in processes:
            assert process.stdin is not None
            process.stdin.close()  # tells the worker to tear its allocations down and exit
        for process in processes:
            process.wait(timeout=10)
        return results, start_ns, cpu0, cpu1
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def run_load(spec: LoadSpec) -> LoadReport:
    """Run the load described by ``spec`` and return its figures.

    Raises :class:`LoadError` with an operator-readable message when the run cannot happen.
    """
    workers = max(1, min(spec.workers, spec.pairs))
    shares = split_pairs(spec.pairs, workers)
    configs = [
        WorkerConfig(
            spec.host,
            spec.port,
            spec.secret,
            spec.realm,
            spec.region,
            pairs=share,
            pps=spec.pps * share / spec.pairs,
            seconds=spec.seconds,
            size=spec.size,
            index=i,
        )
        for i, share in enumerate(shares)
    ]
    _server_cpu(spec.server_pid)  # fail fast on a wrong pid, before any allocation
    host_drops = netstat.host_rcvbuf_errors()
    if workers == 1:
        results, _start, cpu0, cpu1 = _run_in_process(configs[0], spec.server_pid)
    else:
        results, _start, cpu0, cpu1 = _run_subprocesses(configs, spec.server_pid)
    host_drops = netstat.host_rcvbuf_errors() - host_drops
    return _aggregate(spec, workers, results, cpu0, cpu1, host_drops)


def _aggregate(
    spec: LoadSpec,
    workers: int,
    results: list[PumpResult],
    cpu0: Sample,
    cpu1: Sample,
    host_drops: int,
) -> LoadReport:
    sent = sum(r.sent for r in results)
    delivered = sum(r.delivered for r in results)
    first = min(r.first_send_ns for r in results)
    last = max(r.last_send_ns for r in results)
    end = max(r.end_ns for r in results)
    window = max((last - first) / 1e9, 1e-9)
    busy = max((end - first) / 1e9, 1e-9)
    histogram: dict[int, int] = {}
    for r in results:
        for value, count in r.latency_us.items():
            histogram[int(value)] = histogram.get(int(value), 0) + count
    server_cpu = None if cpu0[0] is None or cpu1[0] is None else cpu1[0] - cpu0[0]
    host_cpu = cpu1[1] - cpu0[1]
    generator_cpu = sum(r.cpu_seconds for r in results)
    worker_pct = [
        100 * r.cpu_seconds / max((r.end_ns - r.first_send_ns) / 1e9, 1e-9) for r in results
    ]
    return LoadReport(
        target=f"{spec.host}:{spec.port}",
        server=procstat.process_name(spec.server_pid) if spec.server_pid else None,
        pairs=spec.pairs,
        workers=workers,
        size=spec.size,
        target_pps=spec.pps,
        seconds=spec.seconds,
        sent=sent,
        delivered=delivered,
        lost=sent - delivered,
        loss_pct=round(100 * (sent - delivered) / sent, 4) if sent else 0.0,
        duplicates=sum(r.duplicates for r in results),
        send_errors=sum(r.send_errors for r in results),
        achieved_pps=round(sent / window, 1),
        delivered_pps=round(delivered / window, 1),
        send_window_s=round(window, 3),
        latency_p50_us=_percentile(histogram, 0.50),
        latency_p99_us=_percentile(histogram, 0.99),
        latency_max_us=float(max(histogram)) if histogram else None,
        server_pid=spec.server_pid,
        server_cpu_s=None if server_cpu is None else round(server_cpu, 3),
        server_cpu_pct=None if server_cpu is None else round(100 * server_cpu / busy, 1),
        server_cpu_us_per_packet=(
            round(server_cpu * 1e6 / delivered, 2) if server_cpu is not None and delivered else None
        ),
        generator_cpu_s=round(generator_cpu, 3),
        generator_cpu_pct=round(100 * generator_cpu / busy, 1),
        generator_worker_cpu_pct_max=round(max(worker_pct), 1),
        generator_rcvbuf_drops=sum(r.rcvbuf_drops for r in results),
        other_rcvbuf_drops=max(0, host_drops - sum(r.rcvbuf_drops for r in results)),
        other_cpu_pct=_other_cpu_pct(results, server_cpu, host_cpu),
        control_failures=[f for r in results for f in r.control_failures],
    )


def _other_cpu_pct(
    results: list[PumpResult], server_cpu: float | None, host_cpu: float
) -> float | None:
    """Other processes' CPU over the send window and drain, % of one core (None without a
    server pid, since the server's share cannot be told apart then)."""
    if server_cpu is None or not host_cpu:
        return None
    first = min(r.first_send_ns for r in results)
    end = max(r.end_ns for r in results)
    own = sum(r.cpu_seconds for r in results) + server_cpu
    return round(max(0.0, 100 * (host_cpu - own) / max((end - first) / 1e9, 1e-9)), 1)
