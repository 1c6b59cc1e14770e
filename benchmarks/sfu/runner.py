"""One ``regio bench sfu`` run: each server in turn (router, bare SRTP relay, Janus) under the
same load, in the same run.

Each phase starts its server process (pinned to CPU 0 when the machine has two), starts
``--client-workers`` worker subprocesses (pinned to CPU 1) that own whole rooms, waits for all
of them to be connected, then measures one window per rate (one, or the ``--sweep`` steps on the
same connections): it picks one ``CLOCK_MONOTONIC`` start instant, samples the server's CPU
and its sockets' kernel drops there and again once every worker has reported (send window plus
drain), and adds the workers' figures up. Processes are stopped by pid whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
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
LOADS = ("meeting", "audio")
TARGETS = ("regio", "regio-python", "regio-workers", "relay", "janus")
#: --sweep: rate factor of each step over the previous one, and the most steps.
SWEEP_STEP = 1.5
SWEEP_STEPS = 10
#: --sweep stops a server at the first step beyond these.
SWEEP_MAX_LOSS_PCT = 0.1
SWEEP_MAX_P99_US = 5000.0
LABELS = {"regio": "regio router", "regio-python": "regio router, Python path",
          "regio-workers": "regio router, more workers", "relay": "bare SRTP relay",
          "janus": "janus"}
#: ``regio-python``: the router with its compiled loops switched off (router.transport.fastpath).
PYTHON_PATH_ENV = {"REGIO_FASTPATH": "off"}
MAX_ROUTER_WORKERS = 16


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
    load: str = "meeting"
    video_kbps: float = 1500.0
    sweep: bool = False
    targets: tuple[str, ...] = ("regio", "relay")
    sweep_steps: int = SWEEP_STEPS
    #: Rate factor of each sweep step over the previous one.
    sweep_factor: float = SWEEP_STEP
    #: Run every sweep step, also past the limits (curves for --plot).
    sweep_all: bool = False
    #: Repeat every server's phase this many times, interleaved (regio, relay, janus, regio,
    #: ...): the ratios use each server's median, which a machine whose speed drifts needs.
    rounds: int = 1
    #: ``regio router --workers N``: rooms are placed on the workers round-robin (the bench
    #: is the front door), worker k is pinned to CPU k mod cores, the server's CPU is all of
    #: theirs together.
    router_workers: int = 1
    #: ``regio-workers``: the router again with this many workers, in the same run (scaling).
    compare_workers: int = 0

    def label(self, target: str) -> str:
        """The server's name in tables and JSON."""
        if target == "regio-workers":
            return f"regio router, {self.compare_workers} workers"
        if target == "regio" and self.router_workers > 1:
            return f"regio router, {self.router_workers} workers"
        return LABELS[target]

    def problems(self) -> list[str]:
        """Why these arguments cannot run (empty when they can)."""
        out = []
        if min(self.rooms, self.publishers, self.subscribers, self.client_workers) < 1:
            out.append("--rooms, --publishers, --subscribers and --client-workers must be >= 1")
        if not self.pps > 0 or not self.seconds > 0:
            out.append("--pps and --seconds must be positive")
        if self.seconds > 600:
            out.append("--seconds must be at most 600")
        if 0 < self.seconds < 0.5:
            out.append("--seconds must be at least 0.5 (CPU time is counted in 10 ms ticks)")
        if self.rooms * (self.publishers + self.subscribers) > 2000:
            out.append("at most 2000 participants (rooms x (publishers + subscribers))")
        if not 16 <= self.size <= 1200:
            out.append("--size must be 16-1200 bytes (sequence number and send time fit in 16)")
        if self.pps * self.seconds > 50_000_000:
            out.append("--pps x --seconds must stay below 50 million packets")
        if self.load not in LOADS:
            out.append(f"--load must be one of {', '.join(LOADS)}")
        if not 50 <= self.video_kbps <= 50_000:
            out.append("--video-kbps must be 50-50000")
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown or "regio" not in self.targets or len(set(self.targets)) != len(self.targets):
            out.append(f"servers must be distinct among {', '.join(TARGETS)} and include regio")
        if not 1 <= self.sweep_steps <= 30:
            out.append("--sweep-steps must be 1-30")
        if not 1.05 <= self.sweep_factor <= 4:  # also refuses NaN
            out.append("--sweep-factor must be 1.05-4")
        elif self.sweep_factor ** (self.sweep_steps - 1) > 1000:
            out.append("--sweep-factor ** (--sweep-steps - 1) must stay within 1000x the "
                       "first step's rate")
        if not 1 <= self.router_workers <= MAX_ROUTER_WORKERS:
            out.append(f"--workers must be 1-{MAX_ROUTER_WORKERS}")
        if ("regio-workers" in self.targets) != (self.compare_workers > 0):
            out.append("the regio-workers server needs --compare-workers N")
        if self.compare_workers and not (2 <= self.compare_workers <= MAX_ROUTER_WORKERS
                                         and self.compare_workers != self.router_workers):
            out.append(f"--compare-workers must be 2-{MAX_ROUTER_WORKERS} and differ from "
                       "--workers")
        if not 1 <= self.rounds <= 9:
            out.append("--rounds must be 1-9")
        if self.rounds > 1 and self.sweep:
            out.append("--rounds and --sweep do not combine (a sweep is already a series)")
        if self.sweep_all and not self.sweep:
            out.append("--sweep-all needs --sweep")
        if self.sweep_factor != SWEEP_STEP and not self.sweep:
            out.append("--sweep-factor needs --sweep")
        if "janus" in self.targets and self.load != "meeting":
            out.append("--target janus needs --load meeting (Janus VideoRoom wants video)")
        return out

    def rates(self) -> list[float]:
        """Rate factors of the windows: 1, or the sweep's rising steps."""
        return ([self.sweep_factor**i for i in range(self.sweep_steps)] if self.sweep
                else [1.0])


@dataclass(slots=True)
class PhaseReport:
    """Figures of one server under one window of the load."""

    server: str
    rate: float
    round: int
    sent: int
    expected: int
    delivered: int
    #: Expected but never delivered: includes what the kernel dropped on full queues.
    lost: int
    loss_pct: float
    duplicates: int
    corrupt: int
    send_errors: int
    send_window_s: float
    offered_pps: float
    forwarded_pps: float
    forwarded_mbps: float
    latency_p50_us: float | None
    latency_p99_us: float | None
    latency_p999_us: float | None
    latency_max_us: float | None
    #: The same latency to the kernel's receive stamp on the subscriber's socket: what the
    #: server adds, without the time its copy waits for the one-core generator to read it.
    queued_p50_us: float | None
    queued_p99_us: float | None
    queued_p999_us: float | None
    server_cpu_s: float
    server_cpu_pct: float
    server_cpu_us_per_packet: float | None
    server_cpu_ms_per_mb: float | None
    generator_cpu_s: float
    generator_cpu_pct: float
    #: Datagrams the kernel dropped on the server's / the load workers' full socket queues.
    server_kernel_drops: int
    client_kernel_drops: int
    retransmissions: int
    keyframe_requests: int
    other_cpu_pct: float
    #: CPU time the hypervisor gave to other guests, every core, % of one core (``steal`` in
    #: /proc/stat): stalls no process here can avoid, in every server's latency.
    steal_cpu_pct: float
    #: Time the server was runnable but not running (other processes had its CPU), % of the
    #: window: high values mean loss and latency came from the machine, not the server.
    server_cpu_wait_pct: float

    @property
    def sustainable(self) -> bool:
        """Within the sweep's limits: loss at most 0.1 %, p99 at most 5 ms."""
        return self._within(self.latency_p99_us)

    @property
    def sustainable_at_socket(self) -> bool:
        """The same limits on the latency to the subscriber's socket (the server's share)."""
        return self._within(self.queued_p99_us)

    def _within(self, p99: float | None) -> bool:
        return (self.delivered > 0 and self.loss_pct <= SWEEP_MAX_LOSS_PCT
                and p99 is not None and p99 <= SWEEP_MAX_P99_US)


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


@contextmanager
def _workers(spec: BenchSpec, mode: str, target: str,
             prefix: list[str]) -> Iterator[list[subprocess.Popen[str]]]:
    """Worker subprocesses (each command starts with ``prefix``, e.g. ``ip netns exec NS``),
    set up and connected; stopped by pid on the way out."""
    shares = split_rooms(spec.rooms, spec.client_workers)
    total_publishers = spec.rooms * spec.publishers
    workers: list[subprocess.Popen[str]] = []
    try:
        for i, rooms in enumerate(shares):
            config = WorkerConfig(mode, target, rooms, spec.publishers, spec.subscribers,
                                  spec.pps * len(rooms) * spec.publishers / total_publishers,
                                  spec.seconds, spec.size, seed=i, load=spec.load,
                                  video_kbps=spec.video_kbps)
            process = subprocess.Popen(
                [*prefix, sys.executable, "-m", "benchmarks.sfu.worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, env=child_env(), cwd=REPO_ROOT)
            workers.append(process)
            if spec.pin:
                procstat.pin(process.pid, CLIENT_CPUS)
            _tell(process, json.loads(config.to_json()))
        for process in workers:
            _read(process, "setup", 120)
        yield workers
        for process in workers:
            assert process.stdin is not None
            process.stdin.close()
        for process in workers:
            process.wait(timeout=10)
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None and not stream.closed:
                    stream.close()


def run_phase(spec: BenchSpec, mode: str, target: str, server_pid: int | list[int], label: str, *,
              profile_path: Path | None = None, pin: bool = False,
              stop_when: Callable[[PhaseReport], bool] | None = None,
              prefix: list[str] | None = None) -> list[PhaseReport]:
    """Drive one server with the spec's load from worker subprocesses, one window per rate
    (stopping after the first window ``stop_when`` accepts); with ``profile_path``, py-spy
    samples the server during the first send window only (not setup). ``server_pid`` may
    list several processes (a router's supervisor and workers): their figures add up."""
    pids = [server_pid] if isinstance(server_pid, int) else server_pid
    reports: list[PhaseReport] = []
    with _workers(spec, mode, target, prefix or []) as workers:
        for rate in spec.rates():
            spy = None
            if profile_path is not None and not reports:
                try:
                    spy = profile.start(pids[-1], profile_path,
                                        seconds=spec.seconds + START_DELAY)
                except ProfileError as exc:
                    raise BenchError(str(exc)) from None
                if pin:
                    procstat.pin(spy.pid, CLIENT_CPUS)
            try:
                report = _window(spec, workers, pids, label, rate)
            finally:
                if spy is not None:
                    profile.finish(spy)
            reports.append(report)
            if stop_when is not None and stop_when(report):
                break
    return reports


def _window(spec: BenchSpec, workers: list[subprocess.Popen[str]], pids: list[int],
            label: str, rate: float) -> PhaseReport:
    def cpu() -> float:
        return sum(procstat.process_cpu_seconds(pid) for pid in pids)

    def wait() -> float:
        return sum(procstat.runqueue_wait_seconds(pid) for pid in pids)

    def drops() -> int:
        return sum(procstat.process_udp_drops(pid) for pid in pids)

    server_drops0 = drops()
    client_drops0 = sum(procstat.process_udp_drops(p.pid) for p in workers)
    start_ns = time.monotonic_ns() + int(START_DELAY * 1e9)
    for process in workers:
        _tell(process, {"start_ns": start_ns, "rate": rate})
    while time.monotonic_ns() < start_ns:
        time.sleep(0.001)
    cpu0 = cpu()
    wait0 = wait()
    host0 = procstat.host_busy_cpu_seconds()
    steal0 = procstat.host_steal_cpu_seconds()
    results = [PumpResult(**_read(p, "the send window", spec.seconds + 30)) for p in workers]
    cpu1 = cpu()
    wait1 = wait()
    host1 = procstat.host_busy_cpu_seconds()
    steal = procstat.host_steal_cpu_seconds() - steal0
    server_drops = drops() - server_drops0
    client_drops = sum(procstat.process_udp_drops(p.pid) for p in workers) - client_drops0
    return _aggregate(label, rate, results, cpu1 - cpu0, (host1 - host0, steal),
                      (server_drops, client_drops), wait1 - wait0)


def _aggregate(label: str, rate: float, results: list[PumpResult], server_cpu: float,
               host: tuple[float, float], drops: tuple[int, int],
               server_wait: float) -> PhaseReport:
    """``host``: every core's busy and stolen CPU seconds over the window."""
    host_cpu, steal = host
    sent = sum(r.sent for r in results)
    expected = sum(r.expected for r in results)
    delivered = sum(r.delivered for r in results)
    octets = sum(r.delivered_octets for r in results)
    first = min(r.first_send_ns for r in results)
    last = max(r.last_send_ns for r in results)
    end = max(r.end_ns for r in results)
    window = max((last - first) / 1e9, 1e-9)
    busy = max((end - first) / 1e9, 1e-9)
    histogram = _merged([r.latency_us for r in results])
    queued = _merged([r.queued_latency_us for r in results])
    generator = sum(r.cpu_seconds for r in results)
    lost = max(0, expected - delivered)
    return PhaseReport(
        server=label, rate=round(rate, 4), round=1, sent=sent, expected=expected,
        delivered=delivered,
        lost=lost, loss_pct=round(100.0 * lost / expected, 4) if expected else 0.0,
        duplicates=sum(r.duplicates for r in results), corrupt=sum(r.corrupt for r in results),
        send_errors=sum(r.send_errors for r in results), send_window_s=round(window, 4),
        offered_pps=round(sent / window, 1), forwarded_pps=round(delivered / window, 1),
        forwarded_mbps=round(octets * 8 / window / 1e6, 2),
        latency_p50_us=_percentile(histogram, 0.50), latency_p99_us=_percentile(histogram, 0.99),
        latency_p999_us=_percentile(histogram, 0.999),
        latency_max_us=float(max(histogram)) if histogram else None,
        queued_p50_us=_percentile(queued, 0.50), queued_p99_us=_percentile(queued, 0.99),
        queued_p999_us=_percentile(queued, 0.999),
        server_cpu_s=round(server_cpu, 3), server_cpu_pct=round(100 * server_cpu / busy, 1),
        server_cpu_us_per_packet=round(1e6 * server_cpu / delivered, 2) if delivered else None,
        server_cpu_ms_per_mb=round(1e3 * server_cpu / (octets / 1e6), 2) if octets else None,
        generator_cpu_s=round(generator, 3), generator_cpu_pct=round(100 * generator / busy, 1),
        server_kernel_drops=drops[0], client_kernel_drops=drops[1],
        retransmissions=sum(r.retransmissions for r in results),
        keyframe_requests=sum(r.keyframe_requests for r in results),
        other_cpu_pct=round(max(0.0, 100 * (host_cpu - server_cpu - generator) / busy), 1),
        steal_cpu_pct=round(100 * steal / busy, 1),
        server_cpu_wait_pct=round(100 * server_wait / busy, 1),
    )  # fmt: skip


def _merged(histograms: list[dict[int, int]]) -> dict[int, int]:
    """Workers' latency histograms added up (their keys are strings after JSON)."""
    total: dict[int, int] = {}
    for histogram in histograms:
        for value, count in histogram.items():
            total[int(value)] = total.get(int(value), 0) + count
    return total


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


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 2) if ours and theirs else None


@dataclass(slots=True)
class BenchReport:
    """Every server's windows, keyed by server label in the order they ran."""

    spec: BenchSpec
    phases: dict[str, list[PhaseReport]] = field(default_factory=dict)
    pinned: bool = False

    def _first(self, target: str) -> PhaseReport | None:
        return self.median(self.spec.label(target))

    def median(self, label: str) -> PhaseReport | None:
        """The sweep's first window, or the round with the median CPU per forwarded packet."""
        windows = self.phases.get(label)
        if not windows:
            return None
        if self.spec.sweep or len(windows) == 1:
            return windows[0]
        ranked = sorted(windows, key=lambda w: w.server_cpu_us_per_packet or float("inf"))
        return ranked[(len(ranked) - 1) // 2]

    @property
    def sfu(self) -> PhaseReport:
        report = self._first("regio")
        assert report is not None
        return report

    @property
    def relay(self) -> PhaseReport | None:
        return self._first("relay")

    @property
    def janus(self) -> PhaseReport | None:
        return self._first("janus")

    @property
    def cpu_ratio(self) -> float | None:
        """Router CPU per forwarded packet over the bare relay's (how far from the ceiling)."""
        relay = self.relay
        return _ratio(self.sfu.server_cpu_us_per_packet,
                      relay.server_cpu_us_per_packet if relay else None)

    @property
    def janus_ratio(self) -> float | None:
        """Router CPU per forwarded packet over Janus's."""
        janus = self.janus
        return _ratio(self.sfu.server_cpu_us_per_packet,
                      janus.server_cpu_us_per_packet if janus else None)

    @property
    def workers_scaling(self) -> tuple[str, float] | None:
        """``(what, ratio)``: forwarded pps of the ``--compare-workers`` router over the other
        one's. With ``--sweep``: the highest sustainable steps' when both have one, else the
        highest forwarded pps at any step (loss or not); otherwise the median rounds'."""
        if not self.spec.compare_workers:
            return None
        base = self.phases.get(self.spec.label("regio"), [])
        more = self.phases.get(self.spec.label("regio-workers"), [])
        if not base or not more:
            return None
        if not self.spec.sweep:
            a, b = self.median(self.spec.label("regio")), self.median(
                self.spec.label("regio-workers"))
            if a is None or b is None or not a.forwarded_pps:
                return None
            return "forwarded pps (median rounds)", b.forwarded_pps / a.forwarded_pps
        a1 = self.sustained(self.spec.label("regio"))
        b1 = self.sustained(self.spec.label("regio-workers"))
        if a1 is not None and b1 is not None and a1.forwarded_pps:
            return "highest sustainable forwarded pps", b1.forwarded_pps / a1.forwarded_pps
        top_a = max(w.forwarded_pps for w in base)
        top_b = max(w.forwarded_pps for w in more)
        if not top_a:
            return None
        return "highest forwarded pps at any step (with loss)", top_b / top_a

    def sustained(self, label: str, at_socket: bool = False) -> PhaseReport | None:
        """The --sweep window with the most forwarded packets within the limits (with
        ``at_socket``, on the latency to the subscriber's socket)."""
        good = [w for w in self.phases.get(label, [])
                if (w.sustainable_at_socket if at_socket else w.sustainable)]
        return max(good, key=lambda w: w.forwarded_pps) if good else None

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"spec": asdict(self.spec), "pinned": self.pinned}
        for target in LABELS:
            label = self.spec.label(target)
            windows = self.phases.get(label)
            key = "sfu" if target == "regio" else target
            document[key] = asdict(windows[0]) if windows else None
            if self.spec.sweep or self.spec.rounds > 1:
                series = "sweep" if self.spec.sweep else "rounds"
                document.setdefault(series, {})[key] = [asdict(w) for w in windows or []]
        relay, janus = self.relay, self.janus
        document["ratio"] = {
            "cpu_per_packet_vs_relay": self.cpu_ratio,
            "cpu_per_packet_vs_janus": self.janus_ratio,
            "forwarded_pps_vs_relay": (round(self.sfu.forwarded_pps / relay.forwarded_pps, 3)
                                       if relay and relay.forwarded_pps else None),
            "latency_p99_vs_janus": _ratio(self.sfu.latency_p99_us,
                                           janus.latency_p99_us if janus else None),
        }
        scaling = self.workers_scaling
        if scaling is not None:
            document["ratio"]["workers_scaling"] = {"figure": scaling[0],
                                                    "ratio": round(scaling[1], 3)}
        capacity = self.sfu.server_cpu_us_per_packet
        document["router_pps_per_core_estimate"] = round(1e6 / capacity) if capacity else None
        if self.spec.sweep:
            document["sustained_forwarded_pps"] = {
                label: (w.forwarded_pps if (w := self.sustained(label)) else None)
                for label in self.phases}
            document["sustained_forwarded_pps_at_socket"] = {
                label: (w.forwarded_pps if (w := self.sustained(label, at_socket=True)) else None)
                for label in self.phases}
        return document


def run(spec: BenchSpec, profile_path: Path | None = None) -> BenchReport:
    """Every target's phase; raises BenchError with a readable message when the run cannot
    happen. With ``profile_path``, py-spy samples the router into that file (collapsed
    stacks)."""
    if problems := spec.problems():
        raise BenchError("; ".join(problems))
    pin = spec.pin and len(os.sched_getaffinity(0)) >= 2
    outcome = BenchReport(spec, pinned=pin)
    for number in range(1, spec.rounds + 1):
        for target in spec.targets:
            windows = _run_target(spec, target, pin, profile_path if number == 1 else None)
            for window in windows:
                window.round = number
            outcome.phases.setdefault(spec.label(target), []).extend(windows)
    return outcome


def _run_target(spec: BenchSpec, target: str, pin: bool,
                profile_path: Path | None) -> list[PhaseReport]:
    """One server's phase: start it, measure its windows, stop it by pid."""
    # A step past both limits ends the sweep (the socket one is the looser: see meeting.py).
    stop = ((lambda w: not (w.sustainable or w.sustainable_at_socket))
            if spec.sweep and not spec.sweep_all else None)
    label = spec.label(target)
    if target in ("regio", "regio-python", "regio-workers"):
        env = PYTHON_PATH_ENV if target == "regio-python" else None
        count = spec.compare_workers if target == "regio-workers" else spec.router_workers
        try:
            # A loaded machine starts slowly, and a node starts its workers side by side.
            router = start_router(timeout=60.0 * count, workers=count, env=env)
        except RouterStartError as exc:
            raise BenchError(str(exc)) from None
        try:
            if pin:
                cpus = len(os.sched_getaffinity(0))
                procstat.pin(router.pid, SERVER_CPUS)
                for k, pid in enumerate(router.pids[1:]):
                    procstat.pin(pid, {k % cpus})
            return run_phase(spec, "sfu", " ".join(router.signaling_urls), router.pids, label,
                             profile_path=profile_path if target == "regio" else None,
                             pin=pin, stop_when=stop)
        finally:
            router.stop()
    elif target == "relay":
        process, port = _start_relay(pin)
        try:
            return run_phase(spec, "relay", f"127.0.0.1:{port}", process.pid, label,
                             stop_when=stop)
        finally:
            stop_process(process)
    else:
        from benchmarks.sfu import janus_proc

        try:
            janus = janus_proc.start_janus()
        except janus_proc.JanusStartError as exc:
            raise BenchError(str(exc)) from None
        try:
            if pin:
                procstat.pin(janus.pid, SERVER_CPUS)
            return run_phase(spec, "janus", janus.url, janus.pid, label,
                             stop_when=stop, prefix=janus.prefix())
        finally:
            janus.stop()


__all__ = ["BenchError", "BenchReport", "BenchSpec", "PhaseReport", "run", "split_rooms"]
