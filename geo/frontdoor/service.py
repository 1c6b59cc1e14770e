"""The join decision, without HTTP: from (room, body, client address) to an answer.

Order of work, cheapest refusal first: rate limit (per /24 or /48), request validation, GeoIP,
then the residency decision of :mod:`geo.selection` on a decoded cluster snapshot, then (only
for a room nobody placed yet) the etcd placement transaction, then TURN credentials and the
join token. A join of a known room touches no etcd at all.

Each participant gets their own router (docs/architecture.md §10): the nearest router their own
jurisdiction and the room's policy allow, a router already serving the room preferred in its
region. A known room whose chosen router already serves it costs no etcd round trip; otherwise
the router is added to the room in one transaction (:func:`control.placement.assign_router`),
and a new room counts against a per-network creation limit (squatting). Residency is never
relaxed on the way (ARCHITECTURE.md §4): a client with no allowed router or TURN node answers
503 ``no_capacity``, and the router handed out is checked again against the client's
jurisdiction and the room's stored policy. Only a ``p2p`` room (one router, never spanning)
still answers 409 ``room_outside_jurisdiction`` to a client who may not use its router.

The participant id is random (``secrets``), never derived from the address, and the address
itself goes no further than this module: not into the answer, the token, etcd, metrics or logs.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from control.jsonlimits import JsonRefused, loads_limited
from control.logs import get_logger
from control.netkey import network_key
from control.placement import Assignment, Chooser
from control.rooms import Liveness
from control.schema import NodeRecord, RoomRecord, RoomRouterRecord, SchemaError
from control.tokens import JoinClaims, TokenError, sign_token, verify_token
from control.topology import Topology
from control.turn_credentials import mint_turn_credential
from geo.client_address import HeaderItems, IPNetwork, client_address
from geo.frontdoor.config import FrontdoorConfig, Policy, Size
from geo.frontdoor.guard import Breach, residency_breaches
from geo.frontdoor.metrics import FrontdoorMetrics
from geo.frontdoor.ratelimit import RateLimiter
from geo.frontdoor.snapshot import Snapshot, SnapshotCache
from geo.geoip import GeoIP
from geo.residency import ClientPlace, place_client
from geo.selection import (
    ROOM_POLICIES,
    NoCapacity,
    NodeInfo,
    RoomAllowed,
    RoomOutsideJurisdiction,
    RoomPolicy,
    Selected,
    TurnServers,
    allowed_jurisdictions,
    check_room,
    node_allowed,
    select_router,
    select_turn,
)

log = get_logger("geo.frontdoor.service")

IPAddress = Any  # ipaddress.IPv4Address | ipaddress.IPv6Address (kept loose for speed)

ROOM_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_MAX = 64
BODY_FIELDS = ("name", "policy", "size", "rejoin")
SIZES: tuple[Size, ...] = ("small", "large")
MODES: dict[str, str] = {"small": "p2p", "large": "sfu"}
BODY_CACHE_SIZE = 1024
BODY_CACHE_MAX_LEN = 256
BODY_MAX_DEPTH = 4
"""A join body is one flat object; anything nested deeper is refused before it is walked."""


class BadRequest(ValueError):
    """A join request that cannot be understood; the message names the problem."""


class PlacementUnavailable(Exception):
    """A new room cannot be placed now (etcd unreachable or too slow)."""


class NoRouterForRoom(Exception):
    """Placement found no router with capacity in the chosen region."""


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """The optional JSON body of a join."""

    name: str | None = None
    policy: Policy | None = None
    size: Size | None = None
    rejoin: str | None = None
    """A previous join token of this room: rejoin as the same participant (a page that lost
    its router keeps its identity, and the router replaces the stale session)."""


def parse_join_body(body: bytes) -> JoinRequest:
    """Validate the body strictly: JSON object, known fields only, right types and values."""
    if not body.strip():
        return JoinRequest()
    try:
        data = loads_limited(body, max_depth=BODY_MAX_DEPTH)
    except JsonRefused as exc:
        raise BadRequest(f"body is not usable JSON: {exc.message}") from None
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    unknown = sorted(set(data) - set(BODY_FIELDS))
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(map(repr, unknown))} "
                         f"(allowed: {', '.join(BODY_FIELDS)})")
    name = data.get("name")
    if name is not None:
        if not isinstance(name, str):
            raise BadRequest("'name' must be a string")
        if not 1 <= len(name) <= NAME_MAX or not name.isprintable():
            raise BadRequest(f"'name' must be 1-{NAME_MAX} printable characters")
    policy = data.get("policy")
    if policy is not None and policy not in ROOM_POLICIES:
        raise BadRequest(f"'policy' must be one of {', '.join(ROOM_POLICIES)}")
    size = data.get("size")
    if size is not None and size not in SIZES:
        raise BadRequest(f"'size' must be one of {', '.join(SIZES)}")
    rejoin = data.get("rejoin")
    if rejoin is not None and (not isinstance(rejoin, str) or not 1 <= len(rejoin) <= 4096):
        raise BadRequest("'rejoin' must be a previous join token (a string)")
    return JoinRequest(name, cast("Policy | None", policy), cast("Size | None", size), rejoin)


@dataclass(frozen=True, slots=True)
class JoinAnswer:
    """What to send back: a status, a JSON body and extra headers."""

    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = field(default=())


def error(status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = (),
          **extra: Any) -> JoinAnswer:
    return JoinAnswer(status, {"error": code, "message": message, **extra}, headers)


class RoomLookup(Protocol):
    """The front door's cache of the room tree (:class:`control.rooms.RoomMembership`)."""

    def room(self, room: str) -> RoomRecord | None: ...

    def routers(self, room: str, alive: Liveness | None = None) -> list[RoomRouterRecord]: ...

    def remember(self, record: RoomRecord | RoomRouterRecord) -> None: ...


Placer = Callable[[str, str, str, Chooser, Liveness], Awaitable[Assignment]]
"""``placer(room, policy, mode, choose, alive)``: the participant's router, added to the room
(created if need be) by :func:`control.placement.assign_router`, or
:class:`PlacementUnavailable` / :class:`NoRouterForRoom`."""


def single_router(snapshot: Snapshot, mode: str, members: Sequence[str]) -> bool:
    """Whether a room with these live ``members`` must stay on its one router: ``p2p`` rooms
    never span, and a router without trunks cannot share a room with another router."""
    return bool(members) and (mode == "p2p"
                              or not all(m in snapshot.trunk_ids for m in members))


def spanning_candidates(snapshot: Snapshot, members: Sequence[str]) -> Sequence[NodeInfo]:
    """Routers a participant may be given: any for a new room; once the room has (trunked)
    routers, only routers with trunks, which can carry the room's media to the others."""
    return snapshot.trunk_routers if members else snapshot.routers


class JoinService:
    """The front door's join logic over a cluster snapshot, a room cache and a placer."""

    def __init__(
        self,
        config: FrontdoorConfig,
        geoip: GeoIP,
        snapshots: SnapshotCache,
        rooms: RoomLookup,
        placer: Placer,
        metrics: FrontdoorMetrics,
        *,
        trusted: Sequence[IPNetwork] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.geoip = geoip
        self.snapshots = snapshots
        self.rooms = rooms
        self.placer = placer
        self.metrics = metrics
        self.trusted = tuple(trusted)
        self.clock = clock
        self.limiter = RateLimiter(config.rate_limit, config.rate_burst)
        self.room_limiter = RateLimiter(config.room_rate, config.room_burst)
        """New rooms per client network: joins of existing rooms do not count."""
        self._places: dict[tuple[int, str | None], ClientPlace] = {}
        self._bodies: dict[bytes, JoinRequest] = {}
        self._turns: dict[tuple[int, str | None, str], TurnServers | NoCapacity] = {}
        self._routers: dict[tuple[int, int, str | None, str, tuple[str, ...]],
                            Selected | NoCapacity] = {}

    def client_of(self, peer: str | None, headers: HeaderItems) -> IPAddress | None:
        """The client's address behind trusted proxies (None: unknown, fails closed)."""
        return client_address(peer, headers, self.trusted, header=self.config.forwarded_header)

    def _parse_body(self, body: bytes) -> JoinRequest:
        """:func:`parse_join_body`, remembered for short bodies: clients of one deployment send
        a handful of distinct bodies (the page sends the same one every time), and decoding
        JSON costs about a tenth of a join. Only valid bodies are kept, at most 1,024."""
        request = self._bodies.get(body)
        if request is None:
            request = parse_join_body(body)
            if len(body) <= BODY_CACHE_MAX_LEN:
                if len(self._bodies) >= BODY_CACHE_SIZE:
                    self._bodies.clear()
                self._bodies[body] = request
        return request

    def _place(self, snapshot: Snapshot, country: str | None) -> ClientPlace:
        assert snapshot.topology is not None
        key = (id(snapshot.topology), country)
        place = self._places.get(key)
        if place is None:
            if len(self._places) > 4096:
                self._places.clear()
            place = self._places[key] = place_client(snapshot.topology, country)
        return place

    async def join(self, room: str, body: bytes, client: IPAddress | None) -> JoinAnswer:
        """Answer one join (every outcome is counted in the metrics)."""
        started = time.perf_counter()
        wait = self.limiter.acquire(network_key(client), time.monotonic())
        if wait > 0:
            retry = self.limiter.retry_after(wait)
            self.metrics.count_join(None, None, "rate_limited")
            return error(429, "rate_limited", "too many joins from this network; retry later",
                         (("Retry-After", str(retry)),), retry_after=retry)
        if not ROOM_RE.fullmatch(room):
            self.metrics.count_join(None, None, "bad_request")
            return error(400, "invalid_room",
                         "room names are 1-64 characters of A-Z a-z 0-9 _ -")
        try:
            request = self._parse_body(body)
        except BadRequest as exc:
            self.metrics.count_join(None, None, "bad_request")
            return error(400, "invalid_request", str(exc))
        snapshot = self.snapshots.get()
        if snapshot.topology is None:
            self.metrics.count_join(None, None, "unavailable")
            return error(503, "no_topology", "the cluster topology is not in etcd yet",
                         (("Retry-After", "5"),))
        t0 = time.perf_counter()
        country = self.geoip.lookup(client).country if client is not None else None
        self.metrics.lookup_seconds.observe(time.perf_counter() - t0)
        place = self._place(snapshot, country)
        answer = await self._assign(room, request, place, snapshot, network_key(client))
        self.metrics.join_seconds.observe(time.perf_counter() - started)
        return answer

    async def _assign(self, room: str, request: JoinRequest, place: ClientPlace,
                      snapshot: Snapshot, network: int) -> JoinAnswer:
        """Give the participant a router: the nearest one their jurisdiction and the room's
        policy allow, a router already in the room preferred in its region (answered from the
        caches, no etcd), else one added to the room by the placer's transaction."""
        topology = snapshot.topology
        assert topology is not None
        t0 = time.perf_counter()
        record = self.rooms.room(room)
        routers = snapshot.router_ids
        alive: Liveness = routers.__contains__
        members = [m.router for m in self.rooms.routers(room, alive)] if record else []
        policy: str = record.policy if record else (request.policy or self.config.default_policy)
        mode = record.mode if record else MODES[request.size or self.config.default_size]
        chosen = self._choose(topology, place, policy, mode, snapshot, members)
        if isinstance(chosen, JoinAnswer):
            return chosen
        path = "cached"
        router: NodeInfo | None = chosen.node
        if record is None or chosen.node.node_id not in members:
            path = "placed"
            if record is None:
                wait = self.room_limiter.acquire(network, time.monotonic())
                if wait > 0:
                    retry = self.room_limiter.retry_after(wait)
                    self.metrics.count_join(place.jurisdiction, None, "rate_limited")
                    return error(429, "room_rate_limited",
                                 "too many new rooms from this network; retry later",
                                 (("Retry-After", str(retry)),), retry_after=retry)
            try:
                assignment = await self.placer(room, policy, mode,
                                               self._chooser(topology, place, mode), alive)
            except PlacementUnavailable as exc:
                self.metrics.count_join(place.jurisdiction, None, "unavailable")
                return error(503, "etcd_unavailable", f"cannot place a participant now: {exc}",
                             (("Retry-After", "2"),))
            except NoRouterForRoom as exc:
                self.metrics.count_join(place.jurisdiction, chosen.region, "no_capacity")
                return error(503, "no_capacity", str(exc), (("Retry-After", "2"),),
                             kind="router")
            except SchemaError:
                self.metrics.count_join(place.jurisdiction, None, "bad_request")
                return error(400, "invalid_room", "this room name is not accepted by the cluster")
            record = assignment.room
            self.rooms.remember(record)
            self.rooms.remember(assignment.router)
            snapshot = self.snapshots.get()
            router = snapshot.infos.get(assignment.router.router)
            policy, mode = record.policy, record.mode
        self.metrics.assignment(path).observe(time.perf_counter() - t0)
        # The last word on residency, whatever the caches and the placer said.
        allowed = allowed_jurisdictions(place, cast(RoomPolicy, policy))
        if router is None or not node_allowed(topology, router, allowed):
            self.metrics.count_join(place.jurisdiction, None, "unavailable")
            return error(503, "room_unavailable", "no router of this room is available now",
                         (("Retry-After", "2"),))
        return self._admit(room, request, place, snapshot, router, policy, mode)

    def _choose(self, topology: Topology, place: ClientPlace, policy: str, mode: str,
                snapshot: Snapshot, members: Sequence[str]) -> Selected | JoinAnswer:
        """The participant's router from the snapshot, or the answer refusing them.

        A room that cannot span routers keeps one router: a ``p2p`` room (mode of
        ``small``: one router relaying signaling between two peers), or a room whose router
        has no trunks (no ``quic`` listener registered). A participant then gets the room's
        router, and a client who may not use it is refused with 409
        ``room_outside_jurisdiction``."""
        if single_router(snapshot, mode, members):
            node = snapshot.infos[members[0]]
            verdict = check_room(topology, place, cast(RoomPolicy, policy), node)
            if isinstance(verdict, RoomOutsideJurisdiction):
                self.metrics.count_join(place.jurisdiction, node.region,
                                        "room_outside_jurisdiction")
                return error(409, "room_outside_jurisdiction", verdict.reason,
                             room_region=node.region, room_jurisdiction=node.jurisdiction,
                             client_jurisdiction=place.jurisdiction)
            return Selected(node, None)
        chosen = self._select_router(snapshot, place, policy, members)
        if isinstance(chosen, NoCapacity):
            return self._no_capacity(place, chosen)
        return chosen

    def _select_router(self, snapshot: Snapshot, place: ClientPlace, policy: str,
                       members: Sequence[str]) -> Selected | NoCapacity:
        """:func:`select_router`, remembered per snapshot, client country, policy and the
        room's routers: a join of a known room then costs a dictionary lookup, not a
        distance to every router (the cache empties when the view or the probes move)."""
        key = (snapshot.revision, snapshot.health_version, place.country, policy,
               tuple(members))
        chosen = self._routers.get(key)
        if chosen is None:
            if self._routers and (next(iter(self._routers))[:2] != key[:2]
                                  or len(self._routers) > 4096):
                self._routers.clear()
            chosen = self._routers[key] = select_router(
                snapshot.topology,  # type: ignore[arg-type]
                place, cast(RoomPolicy, policy), spanning_candidates(snapshot, members),
                members)
        return chosen

    def _chooser(self, topology: Topology, place: ClientPlace, mode: str) -> Chooser:
        """The placer's ``choose``: the same decision on the freshest snapshot and the room
        as etcd has it (the placer re-asks after losing a race)."""

        def choose(policy: str, members: Sequence[RoomRouterRecord]) -> NodeRecord | None:
            snapshot = self.snapshots.get()
            names = [m.router for m in members if m.router in snapshot.router_ids]
            if single_router(snapshot, mode, names):
                node = snapshot.infos[names[0]]
                if not isinstance(check_room(topology, place, cast(RoomPolicy, policy), node),
                                  RoomAllowed):
                    return None
                return snapshot.records.get(node.node_id)
            chosen = select_router(topology, place, cast(RoomPolicy, policy),
                                   spanning_candidates(snapshot, names), names)
            if isinstance(chosen, NoCapacity):
                return None
            return snapshot.records.get(chosen.node.node_id)

        return choose

    def _select_turns(self, snapshot: Snapshot, place: ClientPlace, policy: str
                      ) -> TurnServers | NoCapacity:
        """TURN choice depends only on the snapshot, the client's country and the policy:
        cached per snapshot revision (the cache empties when the view moves)."""
        key = (snapshot.revision, place.country, policy)
        turns = self._turns.get(key)
        if turns is None:
            if self._turns and next(iter(self._turns))[0] != snapshot.revision:
                self._turns.clear()
            turns = self._turns[key] = select_turn(
                snapshot.topology,  # type: ignore[arg-type]
                place, snapshot.turns, policy=cast(RoomPolicy, policy),
                count=self.config.turn_servers)
        return turns

    def _no_capacity(self, place: ClientPlace, none: NoCapacity) -> JoinAnswer:
        self.metrics.count_join(place.jurisdiction, None, "no_capacity")
        allowed = sorted(none.allowed_jurisdictions) if none.allowed_jurisdictions else None
        return error(503, "no_capacity", none.reason, (("Retry-After", "5"),),
                     kind=none.kind, jurisdictions=allowed)

    def _refuse_breach(self, place: ClientPlace, router: NodeInfo, breaches: list[Breach]
                       ) -> JoinAnswer:
        """Fail closed on what the residency guard caught (it should never fire: counted as a
        violation that pages someone, logged with node ids only)."""
        for breach in breaches:
            self.metrics.residency_violation(breach.kind)
            log.error("residency guard refused a join: %s %s: %s", breach.kind, breach.node_id,
                      breach.reason)
        self.metrics.count_join(place.jurisdiction, router.region, "unavailable")
        return error(503, "residency_check_failed",
                     "no node this client may use could be confirmed; retry shortly",
                     (("Retry-After", "5"),))

    def _rejoining(self, room: str, request: JoinRequest, snapshot: Snapshot, now: float
                   ) -> tuple[str, str | None] | JoinAnswer:
        """The participant id (and name) a rejoin may keep, or the 400 explaining why not."""
        assert request.rejoin is not None
        if snapshot.token_keyset is None:
            return error(400, "invalid_rejoin", "no join-token keys to check the token with")
        try:
            claims = verify_token(request.rejoin, snapshot.token_keyset, None, now,
                                  expired_grace=self.config.rejoin_window)
        except TokenError as exc:
            return error(400, "invalid_rejoin", f"the previous token is not usable: {exc}")
        if claims.room != room:
            return error(400, "invalid_rejoin", "the previous token is for another room")
        return claims.participant, claims.name

    def _admit(self, room: str, request: JoinRequest, place: ClientPlace, snapshot: Snapshot,
               router: NodeInfo, policy: str, record_mode: str) -> JoinAnswer:
        """Admit a client to a placed room; the room's policy and mode are the ones it was
        created with, whatever this join asked for."""
        now = self.clock()
        name = request.name
        if request.rejoin is not None:
            kept = self._rejoining(room, request, snapshot, now)
            if isinstance(kept, JoinAnswer):
                self.metrics.count_join(place.jurisdiction, router.region, "bad_request")
                return kept
            participant, previous_name = kept
            name = name or previous_name
        else:
            participant = secrets.token_urlsafe(12)
        turns = self._select_turns(snapshot, place, policy)
        ice_servers: list[dict[str, Any]] = []
        handed_out = [router]
        if isinstance(turns, NoCapacity):
            if self.config.require_turn:
                return self._no_capacity(place, turns)
        elif snapshot.turn_key is None:
            if self.config.require_turn:
                self.metrics.count_join(place.jurisdiction, router.region, "unavailable")
                return error(503, "no_secrets", "the TURN secret is not in etcd yet",
                             (("Retry-After", "5"),))
        else:
            minted: dict[str, tuple[str, str]] = {}
            for node in turns.nodes:
                urls = snapshot.ice_urls.get(node.node_id, ())
                if not urls:
                    continue
                cred = minted.get(node.region)
                if cred is None:
                    c = mint_turn_credential(snapshot.turn_key, node.region, participant,
                                             self.config.turn_ttl, now)
                    cred = minted[node.region] = (c.username, c.credential)
                ice_servers.append({"urls": list(urls), "username": cred[0],
                                    "credential": cred[1]})
                handed_out.append(node)
        if snapshot.token_key is None:
            self.metrics.count_join(place.jurisdiction, router.region, "unavailable")
            return error(503, "no_secrets", "the join-token key is not in etcd yet",
                         (("Retry-After", "5"),))
        breaches = residency_breaches(snapshot.topology,  # type: ignore[arg-type]
                                      place, policy, handed_out)
        if breaches:
            return self._refuse_breach(place, router, breaches)
        mode = record_mode
        expires = int(now + self.config.token_ttl)
        claims = JoinClaims(
            kid=snapshot.token_key.kid, room=room, participant=participant,
            router=router.node_id, region=router.region, policy=policy, mode=mode,
            expires_at=expires, issued_at=int(now), name=name,
        )
        token = sign_token(claims, snapshot.token_key)
        self.metrics.count_join(place.jurisdiction, router.region, "ok")
        return JoinAnswer(200, {
            "room": room,
            "participant": participant,
            "policy": policy,
            "mode": mode,
            "jurisdiction": place.jurisdiction,
            "country": place.country,
            "region": router.region,
            "router": {
                "node": router.node_id,
                "region": router.region,
                "jurisdiction": router.jurisdiction,
                "signaling_url": snapshot.signaling.get(router.node_id),
            },
            "ice_servers": ice_servers,
            "token": token,
            "expires_at": expires,
        })


__all__ = [
    "BadRequest",
    "JoinAnswer",
    "JoinRequest",
    "JoinService",
    "NoRouterForRoom",
    "PlacementUnavailable",
    "Placer",
    "RoomLookup",
    "error",
    "parse_join_body",
]
