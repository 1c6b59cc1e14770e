"""One ``regio bench sfu`` run: the router phase, then the bare relay phase on the same load.

Each phase starts its server process (pinned to CPU 0 when the machine has two), starts
``--client-workers`` worker subprocesses (pinned to CPU 1) that own whole rooms, waits for all
of them to be connected, picks one ``CLOCK_MONOTONIC`` start instant, samples the server's CPU
there and again once every worker has reported (send window plus drain), and adds the workers'
figures up. Processes are stopped by pid whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import procstat
from benchmarks.sfu import profile
from benchmarks.sfu.profile import ProfileError
from benchmarks.sfu.pump import PumpResult
from benchmarks.sfu.router_proc import (
    REPO_ROOT,
    RouterStartError,
    child_env,
    start_router,
    stop_process,
)
from benchmarks.sfu.worker import WorkerConfig

START_DELAY = 0.3
SERVER_CPUS = {0}
CLIENT_CPUS = {1}


class BenchError(RuntimeError):
    """The run could not happen; the message is for the operator."""


@dataclass(frozen=True, slots=True)
class BenchSpec:
    """The run as asked for on the command line."""

    rooms: int
    publishers: int
    subscribers: int
    pps: float
    seconds: float
    size: int = 200
    client_workers: int = 1
    relay: bool = True
    pin: bool = True

    def problems(self) -> list[str]:
        """Why these arguments cannot run (empty when they can)."""
        out = []
        if min(self.rooms, self.publishers, self.subscribers, self.client_workers) < 1:
            out.append("--rooms, --publishers, --subscribers and --client-workers must be >= 1")
        if not self.pps > 0 or not self.seconds > 0:
            out.append("--pps and --seconds must be positive")
        if self.rooms * (self.publishers + self.subscribers) > 2000:
            out.append("at most 2000 participants (rooms x (publishers + subscribers))")
        if not 16 <= self.size <= 1200:
            out.append("--size must be 16-1200 bytes (sequence number and send time fit in 16)")
        if self.pps * self.seconds > 50_000_000:
            out.append("--pps x --seconds must stay below 50 million packets")
        return out


@dataclass(slots=True)
class PhaseReport:
    """Figures of one server under the load."""

    server: str
    sent: int
    expected: int
    delivered: int
    lost: int
    loss_pct: float
    duplicates: int
    corrupt: int
    send_errors: int
    send_window_s: float
    offered_pps: float
    forwarded_pps: float
    latency_p50_us: float | None
    latency_p99_us: float | None
    latency_max_us: float | None
    server_cpu_s: float
    server_cpu_pct: float
    server_cpu_us_per_packet: float | None
    generator_cpu_s: float
    generator_cpu_pct: float
    rcvbuf_drops: int
    other_cpu_pct: float
    #: Time the server was runnable but not running (other processes had its CPU), % of the
    #: window: high values mean loss and latency came from the machine, not the server.
    server_cpu_wait_pct: float


def split_rooms(rooms: int, workers: int) -> list[list[str]]:
    names = [f"room{i}" for i in range(rooms)]
    workers = max(1, min(workers, rooms))
    return [names[i::workers] for i in range(workers)]


def _percentile(histogram: dict[int, int], fraction: float) -> float | None:
    total = sum(histogram.values())
    if not total:
        return None
    rank, running = max(1, round(fraction * total)), 0
    for value in sorted(histogram):
        running += histogram[value]
        if running >= rank:
            return float(value)
    return float(max(histogram))


def _read(process: subprocess.Popen[str], what: str, timeout: float) -> dict[str, Any]:
    assert process.stdout is not None
    import select

    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if not line:
        raise BenchError(f"a load worker gave no answer during {what} "
                         f"(status {process.poll()})")
    message: dict[str, Any] = json.loads(line)
    if "error" in message:
        raise BenchError(f"load worker: {message['error']}")
    return message


def _tell(process: subprocess.Popen[str], message: object) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(message) + "\n")
    process.stdin.flush()


def run_phase(spec: BenchSpec, mode: str, target: str, server_pid: int, label: str, *,
              profile_path: Path | None = None, pin: bool = False) -> PhaseReport:
    """Drive one server with the spec's load from worker subprocesses; with
    ``profile_path``, py-spy samples the server during the send window only (not setup)."""
    shares = split_rooms(spec.rooms, spec.client_workers)
    total_publishers = spec.rooms * spec.publishers
    workers: list[subprocess.Popen[str]] = []
    spy: subprocess.Popen[bytes] | None = None
    try:
        for i, rooms in enumerate(shares):
            config = WorkerConfig(mode, target, rooms, spec.publishers, spec.subscribers,
                                  spec.pps * len(rooms) * spec.publishers / total_publishers,
                                  spec.seconds, spec.size, seed=i)
            process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.sfu.worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, env=child_env(), cwd=REPO_ROOT)
            workers.append(process)
            if spec.pin:
                procstat.pin(process.pid, CLIENT_CPUS)
            _tell(process, json.loads(config.to_json()))
        for process in workers:
            _read(process, "setup", 60)
        if profile_path is not None:
            try:
                spy = profile.start(server_pid, profile_path, seconds=spec.seconds + START_DELAY)
            except ProfileError as exc:
                raise BenchError(str(exc)) from None
            if pin:
                procstat.pin(spy.pid, CLIENT_CPUS)
        drops0 = procstat.udp_rcvbuf_errors()
        start_ns = time.monotonic_ns() + int(START_DELAY * 1e9)
        for process in workers:
            _tell(process, {"start_ns": start_ns})
        while time.monotonic_ns() < start_ns:
            time.sleep(0.001)
        cpu0 = procstat.process_cpu_seconds(server_pid)
        wait0 = procstat.runqueue_wait_seconds(server_pid)
        host0 = procstat.host_busy_cpu_seconds()
        results = [PumpResult(**_read(p, "the send window", spec.seconds + 30)) for p in workers]
        cpu1 = procstat.process_cpu_seconds(server_pid)
        wait1 = procstat.runqueue_wait_seconds(server_pid)
        host1 = procstat.host_busy_cpu_seconds()
        drops = procstat.udp_rcvbuf_errors() - drops0
        for process in workers:
            assert process.stdin is not None
            process.stdin.close()
        for process in workers:
            process.wait(timeout=10)
        return _aggregate(label, results, cpu1 - cpu0, host1 - host0, drops, wait1 - wait0)
    finally:
        if spy is not None:
            profile.finish(spy)
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None and not stream.closed:
                    stream.close()


def _aggregate(label: str, results: list[PumpResult], server_cpu: float, host_cpu: float,
               drops: int, server_wait: float = 0.0) -> PhaseReport:
    sent = sum(r.sent for r in results)
    expected = sum(r.expected for r in results)
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
    generator = sum(r.cpu_seconds for r in results)
    lost = max(0, expected - delivered)
    return PhaseReport(
        server=label, sent=sent, expected=expected, delivered=delivered, lost=lost,
        loss_pct=100.0 * lost / expected if expected else 0.0,
        duplicates=sum(r.duplicates for r in results), corrupt=sum(r.corrupt for r in results),
        send_errors=sum(r.send_errors for r in results), send_window_s=round(window, 4),
        offered_pps=round(sent / window, 1), forwarded_pps=round(delivered / window, 1),
        latency_p50_us=_percentile(histogram, 0.50), latency_p99_us=_percentile(histogram, 0.99),
        latency_max_us=float(max(histogram)) if histogram else None,
        server_cpu_s=round(server_cpu, 3), server_cpu_pct=round(100 * server_cpu / busy, 1),
        server_cpu_us_per_packet=round(1e6 * server_cpu / delivered, 2) if delivered else None,
        generator_cpu_s=round(generator, 3), generator_cpu_pct=round(100 * generator / busy, 1),
        rcvbuf_drops=drops,
        other_cpu_pct=round(max(0.0, 100 * (host_cpu - server_cpu - generator) / busy), 1),
        server_cpu_wait_pct=round(100 * server_wait / busy, 1),
    )  # fmt: skip


def _start_relay(pin: bool) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.sfu.relay"],
                               stdout=subprocess.PIPE, env=child_env(), cwd=REPO_ROOT)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        stop_process(process)
        raise BenchError("the bare relay did not start")
    if pin:
        procstat.pin(process.pid, SERVER_CPUS)
    return process, int(json.loads(line)["port"])


@dataclass(slots=True)
class BenchReport:
    spec: BenchSpec
    sfu: PhaseReport
    relay: PhaseReport | None
    pinned: bool

    @property
    def cpu_ratio(self) -> float | None:
        """Router CPU per forwarded packet over the bare relay's (how far from the ceiling)."""
        ours = self.sfu.server_cpu_us_per_packet
        ceiling = self.relay.server_cpu_us_per_packet if self.relay else None
        return round(ours / ceiling, 2) if ours and ceiling else None

    def as_json(self) -> dict[str, Any]:
        capacity = (1e6 / self.sfu.server_cpu_us_per_packet
                    if self.sfu.server_cpu_us_per_packet else None)
        return {"spec": asdict(self.spec), "pinned": self.pinned, "sfu": asdict(self.sfu),
                "relay": asdict(self.relay) if self.relay else None,
                "ratio": {"cpu_per_packet_vs_relay": self.cpu_ratio,
                          "forwarded_pps_vs_relay": (
                              round(self.sfu.forwarded_pps / self.relay.forwarded_pps, 3)
                              if self.relay and self.relay.forwarded_pps else None)},
                "router_pps_per_core_estimate": round(capacity) if capacity else None}


def run(spec: BenchSpec, profile_path: Path | None = None) -> BenchReport:
    """Both phases; raises BenchError with a readable message when the run cannot happen.
    With ``profile_path``, py-spy samples the router into that file (collapsed stacks)."""
    if problems := spec.problems():
        raise BenchError("; ".join(problems))
    pin = spec.pin and len(os.sched_getaffinity(0)) >= 2
    try:
        router = start_router()
    except RouterStartError as exc:
        raise BenchError(str(exc)) from None
    try:
        if pin:
            procstat.pin(router.pid, SERVER_CPUS)
        sfu = run_phase(spec, "sfu", router.signaling_url, router.pid, "regio router",
                        profile_path=profile_path, pin=pin)
    finally:
        router.stop()
    relay = None
    if spec.relay:
        process, port = _start_relay(pin)
        try:
            relay = run_phase(spec, "relay", f"127.0.0.1:{port}", process.pid, "bare relay")
        finally:
            stop_process(process)
    return BenchReport(spec, sfu, relay, pin)


__all__ = ["BenchError", "BenchReport", "BenchSpec", "PhaseReport", "run", "split_rooms"]
