"""Side-by-side run: the same load against Debian coturn and against ``regio turn``.

The issue's goal is stated as a ratio measured in one run on one machine (CPU per relayed packet
no more than 1.5x coturn's with one relay thread), because absolute figures move with the host.
Each server is started on a fresh loopback port, loaded, and stopped by pid before the next one
starts, so they never compete for the CPU. ``regio turn`` is skipped with a reason when its
command does not exist yet.
"""

from __future__ import annotations

import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.turn_load.first_contact import FirstContact, measure_first_contact
from benchmarks.turn_load.runner import LoadReport, LoadSpec, run_load
from benchmarks.turn_load.servers import (
    ServerProcess,
    regio_turn_available,
    start_coturn,
    start_regio_turn,
)
from benchmarks.turn_load.session import LoadError

REGION = "local"
REALM = "regio"


@dataclass(slots=True)
class CompareResult:
    coturn: LoadReport
    coturn_version: str
    regio: LoadReport | None
    regio_skipped: str | None
    #: True when ``regio turn`` exists but the run against it failed (skipped says why).
    regio_failed: bool = False
    #: Time to first allocation, browser-style, before the load of the first round.
    coturn_first: FirstContact | None = None
    regio_first: FirstContact | None = None

    @property
    def cpu_ratio(self) -> float | None:
        """regio CPU per relayed packet / coturn's (the issue wants at most 1.5)."""
        if self.regio is None:
            return None
        ours, theirs = self.regio.server_cpu_us_per_packet, self.coturn.server_cpu_us_per_packet
        if ours is None or not theirs:
            return None
        return round(ours / theirs, 2)

    def as_json(self) -> dict[str, Any]:
        return {
            "coturn_version": self.coturn_version,
            "coturn": self.coturn.as_json(),
            "regio": None if self.regio is None else self.regio.as_json(),
            "regio_skipped": self.regio_skipped,
            "regio_failed": self.regio_failed,
            "cpu_per_packet_ratio": self.cpu_ratio,
            "first_allocation": {
                "coturn": None if self.coturn_first is None else self.coturn_first.as_json(),
                "regio": None if self.regio_first is None else self.regio_first.as_json(),
            },
        }


def coturn_version() -> str:
    try:
        out = subprocess.run(["turnserver", "--version"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "coturn ?"
    text = out.stdout.decode(errors="replace").strip().splitlines()
    return f"coturn {text[0]}" if text else "coturn ?"


def _load(server: ServerProcess, secret: str, first: list[FirstContact] | None = None,
          **load: Any) -> LoadReport:
    """Load ``server`` and stop it; with ``first``, measure first contact before the load."""
    if first is not None:
        try:
            first.append(measure_first_contact(server.host, server.port, secret,
                                               realm=server.realm, region=server.region))
        except LoadError:
            server.stop()
            raise
    spec = LoadSpec(
        server.host,
        server.port,
        secret,
        realm=server.realm,
        region=server.region,
        server_pid=server.pid,
        **load,
    )
    try:
        return run_load(spec)
    finally:
        server.stop()


def _quietest(reports: list[LoadReport]) -> LoadReport:
    """The round least disturbed by other processes (a shared machine's noise)."""
    return min(reports, key=lambda r: r.other_cpu_pct or 0.0)


def run_compare(
    *,
    pairs: int,
    pps: float,
    seconds: float,
    size: int,
    workers: int,
    rounds: int = 1,
    skip_regio: bool = False,
) -> CompareResult:
    """Load coturn, then ``regio turn`` (if available), with identical parameters.

    With ``rounds`` > 1 the two alternate that many times (fresh servers each round) and each
    side reports its quietest round, so a burst of unrelated load on a shared machine does not
    decide the ratio.
    """
    secret = secrets.token_urlsafe(16)
    load = {"pairs": pairs, "pps": pps, "seconds": seconds, "size": size, "workers": workers}
    skipped: str | None = None
    available, detail = False, ""
    if skip_regio:
        skipped = "skipped on request (--skip-regio)"
    else:
        available, detail = regio_turn_available()
        if not available:
            skipped = detail
    coturn_runs: list[LoadReport] = []
    regio_runs: list[LoadReport] = []
    failed = False
    coturn_first: list[FirstContact] = []
    regio_first: list[FirstContact] = []
    with tempfile.TemporaryDirectory(prefix="regio-bench-turn-") as tmp:
        workdir = Path(tmp)
        for round_no in range(max(1, rounds)):
            server = start_coturn(secret, workdir, pairs=pairs, realm=REALM)
            coturn_runs.append(_load(server, secret, coturn_first if round_no == 0 else None,
                                     **load))
            if not available or failed:
                continue
            try:
                server = start_regio_turn(
                    secret, workdir, pairs=pairs, region=REGION, realm=REALM, help_text=detail
                )
                regio_runs.append(_load(server, secret,
                                        regio_first if round_no == 0 else None, **load))
            except LoadError as exc:
                skipped, failed = f"regio turn failed: {exc}", True
    regio = _quietest(regio_runs) if regio_runs and not failed else None
    return CompareResult(_quietest(coturn_runs), coturn_version(), regio, skipped, failed,
                         coturn_first[0] if coturn_first else None,
                         regio_first[0] if regio_first and regio is not None else None)
