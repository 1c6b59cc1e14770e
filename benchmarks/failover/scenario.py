"""The three failover scenarios of ``regio bench failover`` on a running ``--hosts`` cluster.

Runs inside the cluster's ops host (the caller moved the process there). The cluster is the
state dict ``regio cluster up --hosts`` wrote; nodes are killed and links cut through
:mod:`control.cluster_hosts` and :mod:`control.netns`, exactly as the operator commands do.

(a) **router killed**: participants from Germany in one room; SIGKILL its router. Probe joins
    to that room every 100 ms measure when the front door stops naming the dead router; each
    participant rejoins by itself, and the time until it is back (joined, media connected) on
    another router is its rejoin time.
(b) **etcd leader killed** during a steady stream of joins (Germany and the US), each opening a
    new room (an etcd transaction); each join is retried like a client would (``Retry-After``
    or 250 ms) for up to 5 s; a join still failing then is a failed join.
(c) **region partitioned from etcd**: participants from Sweden in a room on the eu-north
    router; cut eu-north from every etcd host until the router's lease is gone, let another
    Swede join the room meanwhile, check the router kept receiving media, heal, wait for it
    to register again, then count rooms whose participants ended up on two routers.
"""

from __future__ import annotations

import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from benchmarks.failover import figures
from benchmarks.failover.participant import JoinFailed, Participant, join
from control import schema
from control.cluster_hosts import ETCD_HOSTS, attach, kill_node
from control.etcd import EtcdClient, EtcdConfig
from router.transport import DtlsCertificate

DE_CLIENTS = [f"5.9.0.{i}" for i in range(1, 60)]  # Hetzner, DE
SE_CLIENTS = [f"193.10.0.{i}" for i in range(1, 60)]  # SUNET, SE
US_CLIENTS = [f"8.8.{i}.8" for i in range(1, 60)]  # Google, US
EEA = {"EEA"}


@dataclass(frozen=True, slots=True)
class FailoverConfig:
    participants: int = 4
    """Participants in the killed router's room (a) and in the partitioned region's room (c)."""
    join_rate: float = 10.0
    """Joins per second in (b)."""
    join_seconds: float = 8.0
    join_deadline: float = 5.0
    """A join still failing this long after its first attempt is a failed join."""
    probe_window: float = 20.0
    """How long (a) watches the front door's answers after the kill."""
    rejoin_timeout: float = 30.0
    settle_timeout: float = 40.0
    partition_region: str = "eu-north"


Progress = Callable[[str], None]


class Scenario:
    def __init__(self, state: dict[str, Any], config: FailoverConfig, progress: Progress) -> None:
        self.state = state
        self.config = config
        self.progress = progress
        self.tls = ssl.create_default_context(cafile=state["ca"])
        self.frontdoor = str(state["frontdoor"])
        self.certificate = DtlsCertificate.generate()
        self.participants: list[Participant] = []
        self.figures: dict[str, Any] = {}
        self.etcd = EtcdClient(EtcdConfig.from_urls(state["etcd"], timeout=1.0))
        self._seed = 0

    def _participant(self, nursery: trio.Nursery, room: str, ip: str) -> Participant:
        self._seed += 1
        p = Participant(f"p{self._seed}", room, ip, self.frontdoor, self.tls, self.certificate,
                        self._seed)
        self.participants.append(p)
        nursery.start_soon(p.run)
        return p

    async def run(self) -> dict[str, Any]:
        try:
            async with trio.open_nursery() as nursery:
                await self.router_killed(nursery)
                await self.etcd_leader_killed()
                await self.region_partitioned(nursery)
                nursery.cancel_scope.cancel()
        finally:
            self.etcd.close()
        events = [e for p in self.participants for e in p.events]
        self.figures["residency_violations"] = (
            figures.residency_violations(events, EEA) + self.figures.pop("_join_violations", 0))
        self.figures["chat_received"] = sum(p.chat_received for p in self.participants)
        self.figures["chat_wrong_room"] = sum(p.chat_wrong_room for p in self.participants)
        self.figures["verdicts"] = figures.verdicts(self.figures)
        return self.figures

    # -------------------------------------------------------------------------------- (a)
    async def router_killed(self, nursery: trio.Nursery) -> None:
        cfg = self.config
        room = "failover-a"
        group = [self._participant(nursery, room, DE_CLIENTS[i]) for i in range(cfg.participants)]
        with trio.fail_after(60):
            for p in group:
                await p.connected.wait()
        routers = {p.router for p in group}
        dead = sorted(routers)[0]
        self.progress(f"(a) {len(group)} participants in {room} on {dead}; SIGKILL it")
        probes: list[tuple[float, str]] = []
        killed_at = trio.current_time()
        kill_node(self.state, dead)
        async with trio.open_nursery() as probing:
            probing.start_soon(self._probe, room, probes, killed_at + cfg.probe_window)
            with trio.move_on_after(cfg.rejoin_timeout):
                while any(figures.back_in(p.events, killed_at, dead) is None for p in group):
                    await trio.sleep(0.05)
        stop = figures.stop_assigning(probes, dead, killed_at)
        rejoin = [b - killed_at for p in group
                  if (b := figures.back_in(p.events, killed_at, dead)) is not None]
        self.figures.update(
            killed_router=dead,
            stop_assigning_s=round(stop if stop is not None else cfg.probe_window, 2),
            stop_assigning_seen=stop is not None,
            probes=len(probes),
            rejoin_p99_s=round(figures.percentile(rejoin, 99), 2) if rejoin else None,
            rejoin_p50_s=round(figures.percentile(rejoin, 50), 2) if rejoin else None,
            participants=len(group),
            not_rejoined=len(group) - len(rejoin),
        )
        self.progress(f"(a) stop assigning after {self.figures['stop_assigning_s']} s"
                      f"{'' if stop is not None else ' (still assigning: lower bound)'}; "
                      f"rejoin p99 {self.figures['rejoin_p99_s']} s")

    async def _probe(self, room: str, out: list[tuple[float, str]], until: float) -> None:
        i = 0
        while trio.current_time() < until:
            i += 1
            sent = trio.current_time()
            try:
                answer = await join(self.frontdoor, room, DE_CLIENTS[-1 - i % 10], self.tls,
                                    timeout=2.0)
                out.append((sent, str(answer["router"]["node"])))
            except JoinFailed:
                out.append((sent, ""))
            await trio.sleep_until(sent + 0.1)

    # -------------------------------------------------------------------------------- (b)
    async def etcd_leader_killed(self) -> None:
        cfg = self.config
        leader = await self._etcd_leader()
        total = int(cfg.join_rate * cfg.join_seconds)
        results: list[tuple[bool, int, float]] = []  # (succeeded, attempts, seconds)
        violations = [0]
        self.progress(f"(b) {total} joins over {cfg.join_seconds:g} s; SIGKILL etcd leader "
                      f"{leader} after {cfg.join_seconds / 4:g} s")
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i in range(total):
                if i == total // 4:
                    kill_node(self.state, leader)
                    self.figures["etcd_leader_killed"] = leader
                eea = i % 2 == 0
                ip = DE_CLIENTS[i % 50] if eea else US_CLIENTS[i % 50]
                # Every join opens a new room: placing it is an etcd transaction, the part a
                # leader election can fail.
                nursery.start_soon(self._join_with_retry, f"stream-{i}", ip, eea, results,
                                   violations)
                await trio.sleep_until(start + (i + 1) / cfg.join_rate)
        failed = sum(1 for ok, _, _ in results if not ok)
        took = [s for ok, _, s in results if ok]
        self.figures.update(
            joins=len(results),
            failed_joins=failed,
            retried_joins=sum(1 for ok, n, _ in results if ok and n > 1),
            join_p99_s=round(figures.percentile(took, 99), 3) if took else None,
            _join_violations=violations[0],
        )
        self.progress(f"(b) {failed} failed joins of {len(results)} "
                      f"({self.figures['retried_joins']} needed a retry)")

    async def _join_with_retry(self, room: str, ip: str, eea: bool,
                               out: list[tuple[bool, int, float]], violations: list[int]) -> None:
        first = trio.current_time()
        attempts = 0
        while True:
            attempts += 1
            try:
                answer = await join(self.frontdoor, room, ip, self.tls, timeout=2.0)
            except JoinFailed as exc:
                pause = min(exc.retry_after or 0.25, 1.0)
                if trio.current_time() + pause - first > self.config.join_deadline:
                    out.append((False, attempts, trio.current_time() - first))
                    return
                await trio.sleep(pause)
                continue
            if eea and answer["router"].get("jurisdiction") not in EEA:
                violations[0] += 1
            out.append((True, attempts, trio.current_time() - first))
            return

    async def _etcd_leader(self) -> str:
        for _ in range(100):
            for status in await self.etcd.status():
                if status.leader_id and status.leader_id == status.member_id:
                    for member in self.state["etcd_members"]:
                        if member["client_url"] == status.endpoint:
                            return str(member["name"])
            await trio.sleep(0.1)
        raise RuntimeError("no etcd leader found")

    # -------------------------------------------------------------------------------- (c)
    async def region_partitioned(self, nursery: trio.Nursery) -> None:
        cfg = self.config
        region, room = cfg.partition_region, "failover-c"
        router = f"{region}-router-1"
        group = [self._participant(nursery, room, SE_CLIENTS[i]) for i in range(cfg.participants)]
        with trio.fail_after(60):
            for p in group:
                await p.connected.wait()
        where = {p.router for p in group}
        metrics = self._metrics_url(router)
        before = await trio.to_thread.run_sync(_counter, metrics, "regio_router_packets_in")
        net = attach(self.state)
        self.progress(f"(c) {len(group)} participants in {room} on {sorted(where)}; "
                      f"partition {region} from etcd")
        cut_at = trio.current_time()
        for host in ETCD_HOSTS:
            net.partition(region, host)
        try:
            with trio.fail_after(60):
                while await self.etcd.get(schema.node_key(router)) is not None:
                    await trio.sleep(0.25)
            lease_lost = trio.current_time() - cut_at
            self.progress(f"(c) {router}'s registration gone after {lease_lost:.1f} s; "
                          "another participant joins the room")
            late = self._participant(nursery, room, SE_CLIENTS[cfg.participants])
            with trio.move_on_after(30):
                await late.connected.wait()
            await trio.sleep(1.0)
            after = await trio.to_thread.run_sync(_counter, metrics, "regio_router_packets_in")
            dropped_out = sum(1 for p in group for e in p.events
                              if e.kind == "out" and e.at >= cut_at)
        finally:
            for host in ETCD_HOSTS:
                net.heal(region, host)
        healed_at = trio.current_time()
        with trio.move_on_after(60):
            while await self.etcd.get(schema.node_key(router)) is None:
                await trio.sleep(0.25)
        reregistered = trio.current_time() - healed_at
        self.progress(f"(c) healed; {router} registered again after {reregistered:.1f} s; "
                      "waiting for the room to settle")
        everyone = [*group, late]
        rooms = self._rooms()
        with trio.move_on_after(cfg.settle_timeout):
            while (figures.duplicate_placements(rooms := self._rooms())
                   or not all(p.router for p in everyone)):
                await trio.sleep(0.25)
        self.figures.update(
            partition_lease_lost_s=round(lease_lost, 2),
            partition_media_packets=(None if before is None or after is None
                                     else int(after - before)),
            partition_dropped_out=dropped_out,
            late_joiner_router=late.router or None,
            reregister_s=round(reregistered, 2),
            duplicate_placements=figures.duplicate_placements(rooms),
            rooms_end={name: sorted(set(rs)) for name, rs in rooms.items()},
        )
        self.progress(f"(c) media packets at {router} while cut off: "
                      f"{self.figures['partition_media_packets']}; duplicate placements: "
                      f"{self.figures['duplicate_placements']}")

    def _rooms(self) -> dict[str, list[str]]:
        rooms: dict[str, list[str]] = {}
        for p in self.participants:
            rooms.setdefault(p.room, []).append(p.router)
        return rooms

    def _metrics_url(self, node: str) -> str:
        for n in self.state["nodes"]:
            if n["node"] == node:
                return f"http://{n['address']}:{int(n['port']) + 2}/metrics"
        raise RuntimeError(f"no node {node} in the cluster")


def _counter(url: str, name: str) -> float | None:
    from control.top import parse_metrics

    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            text = bytes(response.read()).decode(errors="replace")
    except OSError:
        return None
    return parse_metrics(text).get(name)


def run(state: dict[str, Any], config: FailoverConfig, progress: Progress) -> dict[str, Any]:
    started = time.time()
    result = trio.run(Scenario(state, config, progress).run)
    result["seconds"] = round(time.time() - started, 1)
    return result
