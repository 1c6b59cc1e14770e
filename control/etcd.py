"""The one Trio-native adapter over etcd (``pyetcd``, the maintained python-etcd3 fork).

Why an adapter: pyetcd's calls block, its watch helper hides ``compact_revision`` behind a
callback error, and its multi-endpoint failover parks a failed endpoint for minutes. Here every
blocking gRPC call runs in ``trio.to_thread``; a call goes to the current endpoint and, when that
one cannot answer, to each other endpoint in turn; watches are one gRPC stream per watch whose
responses are bridged into a Trio memory channel as :class:`WatchBatch`, :class:`WatchCompacted`
or :class:`WatchBroken`, so callers handle compaction explicitly instead of guessing.

Writes that fail with :class:`EtcdUnavailable` have an *uncertain* outcome (etcd may have applied
them during a leader election); callers make writes idempotent and retry (see ``registry``).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import grpc
import trio
from pyetcd import Endpoint, MultiEndpointEtcd3Client, etcdrpc

from control.etcd_watch import WatchStream
from control.etcdtypes import (
    Compare,
    CompareOp,
    CompareTarget,
    Delete,
    Get,
    KeyValue,
    MemberStatus,
    Op,
    Put,
    TxnResult,
    WatchBatch,
    WatchBroken,
    WatchCompacted,
    WatchEvent,
    WatchItem,
)

__all__ = [
    "Compare",
    "CompareOp",
    "CompareTarget",
    "Delete",
    "EtcdClient",
    "EtcdCompacted",
    "EtcdConfig",
    "EtcdEndpoint",
    "EtcdError",
    "EtcdUnavailable",
    "Get",
    "KeyValue",
    "MemberStatus",
    "Op",
    "Put",
    "TxnResult",
    "WatchBatch",
    "WatchBroken",
    "WatchCompacted",
    "WatchEvent",
    "WatchItem",
    "prefix_end",
]

T = TypeVar("T")

#: gRPC codes that mean "this endpoint could not answer now": try the next one.
_RETRY_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN}
)

#: Reconnect quickly after an outage (gRPC's default backoff grows to two minutes) and detect
#: dead watch streams with HTTP/2 pings no more often than etcd's default enforcement allows.
_CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)


class EtcdError(Exception):
    """etcd answered with an error that retrying elsewhere will not fix."""


class EtcdUnavailable(EtcdError):
    """No endpoint answered in time. For a write, the outcome is unknown."""


class EtcdCompacted(EtcdError):
    """The requested revision has been compacted away."""

    def __init__(self, compact_revision: int, message: str = "") -> None:
        self.compact_revision = compact_revision
        super().__init__(message or f"revision compacted (compact revision {compact_revision})")


@dataclass(frozen=True, slots=True)
class EtcdEndpoint:
    """One etcd client URL."""

    host: str
    port: int
    secure: bool = False
    """``https://``: talk TLS to this endpoint."""

    @classmethod
    def parse(cls, url: str) -> EtcdEndpoint:
        """``http://host:port``, ``https://host:port`` or ``host:port`` (plain)."""
        text = url.strip()
        if "://" not in text:
            text = "http://" + text
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an etcd URL: {url!r} (expected http(s)://host:port)")
        try:
            port = parts.port or 2379
        except ValueError as exc:
            raise ValueError(f"not an etcd URL: {url!r} (bad port)") from exc
        if parts.path not in ("", "/"):
            raise ValueError(f"not an etcd URL: {url!r} (unexpected path)")
        return cls(parts.hostname, port, parts.scheme == "https")

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.secure else 'http'}://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class EtcdConfig:
    """How to reach an etcd cluster."""

    endpoints: tuple[EtcdEndpoint, ...]
    """Client URLs of the members; calls fail over between them in order."""
    ca_cert: str | None = None
    """PEM file of the CA that signed the members' server certificates (TLS endpoints)."""
    client_cert: str | None = None
    """PEM client certificate for mutual TLS (with ``client_key``)."""
    client_key: str | None = None
    """PEM private key of ``client_cert``."""
    timeout: float = 3.0
    """Seconds one RPC may take on one endpoint before the next endpoint is tried."""
    user: str | None = None
    """etcd user for role-based access (with ``password``); None: no authentication."""
    password: str | None = None
    secrets_key: str | None = None
    """File holding the key secrets are sealed with in etcd (:mod:`control.secretbox`);
    None: ``$REGIO_SECRETS_KEY``."""

    @classmethod
    def from_urls(cls, urls: str | Sequence[str], **kwargs: Any) -> EtcdConfig:
        """Build from ``"http://a:2379,http://b:2379"`` or a list of URLs."""
        items = urls.split(",") if isinstance(urls, str) else list(urls)
        endpoints = tuple(EtcdEndpoint.parse(u) for u in items if u.strip())
        if not endpoints:
            raise ValueError("no etcd endpoint given")
        return cls(endpoints, **kwargs)

    @property
    def urls(self) -> str:
        return ",".join(e.url for e in self.endpoints)


def prefix_end(prefix: str) -> bytes:
    """The exclusive range end covering every key that starts with ``prefix``."""
    raw = bytearray(prefix.encode())
    for i in reversed(range(len(raw))):
        if raw[i] < 0xFF:
            raw[i] += 1
            return bytes(raw[: i + 1])
    return b"\0"


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]
):
    pass


class _TokenAuth(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """etcd authentication: every call carries a token from ``Authenticate(user, password)``.

    Simple tokens are kept by the member that issued them and expire after a while
    (``--auth-token-ttl``), so each endpoint has its own token, renewed every
    :attr:`REFRESH` seconds and at once when etcd says it is invalid (see
    :meth:`EtcdClient._call_sync`).
    """

    REFRESH = 60.0

    def __init__(self, channel: grpc.Channel, user: str, password: str, timeout: float) -> None:
        self._auth = etcdrpc.AuthStub(channel)
        self._request = etcdrpc.AuthenticateRequest(name=user, password=password)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._token: str | None = None
        self._at = 0.0

    def token(self, *, renew: bool = False) -> str:
        with self._lock:
            now = time.monotonic()
            if renew or self._token is None or now - self._at > self.REFRESH:
                self._token = str(self._auth.Authenticate(self._request, self._timeout).token)
                self._at = now
            return self._token

    def _with_token(self, details: grpc.ClientCallDetails) -> _CallDetails:
        metadata = [(k, v) for k, v in (details.metadata or ()) if k != "token"]
        metadata.append(("token", self.token()))
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            getattr(details, "wait_for_ready", None),
                            getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._with_token(details), requests)


def _auth_expired(exc: grpc.RpcError) -> bool:
    details = (exc.details() or "").lower()
    return exc.code() == grpc.StatusCode.UNAUTHENTICATED or "invalid auth token" in details


class _Conn:
    """A gRPC channel to one endpoint, built through pyetcd, with its stubs."""

    def __init__(self, endpoint: EtcdEndpoint, creds: Any,
                 login: tuple[str, str, float] | None = None) -> None:
        self.endpoint = endpoint
        self._ep = Endpoint(
            endpoint.host,
            endpoint.port,
            secure=endpoint.secure,
            creds=creds if endpoint.secure else None,
            time_retry=0.0,
            opts=list(_CHANNEL_OPTIONS),
        )
        channel = self._ep.channel
        self.auth: _TokenAuth | None = None
        if login is not None:
            self.auth = _TokenAuth(channel, *login)
            channel = grpc.intercept_channel(channel, self.auth)
        self.kv = etcdrpc.KVStub(channel)
        self.lease = etcdrpc.LeaseStub(channel)
        self.watch = etcdrpc.WatchStub(channel)
        self.maintenance = etcdrpc.MaintenanceStub(channel)
        self.cluster = etcdrpc.ClusterStub(channel)

    def close(self) -> None:
        self._ep.close()


def _map_rpc_error(exc: grpc.RpcError) -> EtcdError:
    code = exc.code()
    details = exc.details() or ""
    if "compacted" in details:
        return EtcdCompacted(0, details)
    return EtcdError(f"etcd error {code.name}: {details}")


class EtcdClient:
    """Trio-native etcd client over several endpoints (see module docstring).

    Create one per process and share it; it is safe to use from many tasks at once.
    """

    def __init__(self, config: EtcdConfig) -> None:
        self.config = config
        creds = None
        if any(e.secure for e in config.endpoints):
            if config.ca_cert is None:
                raise ValueError("TLS endpoints need a CA certificate (ca_cert)")
            if (config.client_cert is None) != (config.client_key is None):
                raise ValueError("mutual TLS needs both client_cert and client_key")
            creds = MultiEndpointEtcd3Client.get_secure_creds(
                config.ca_cert, config.client_key, config.client_cert
            )
        if (config.user is None) != (config.password is None):
            raise ValueError("etcd authentication needs both user and password")
        login = (None if config.user is None or config.password is None
                 else (config.user, config.password, config.timeout))
        self._conns = [_Conn(e, creds, login) for e in config.endpoints]
        self._current = 0
        self._lock = threading.Lock()
        self._closed = False

    # -- plumbing ---------------------------------------------------------------------------

    def _ordered(self) -> list[_Conn]:
        with self._lock:
            start = self._current
        n = len(self._conns)
        return [self._conns[(start + i) % n] for i in range(n)]

    def _call_sync(self, fn: Callable[[_Conn], T]) -> T:
        """Run ``fn`` against the current endpoint, then each other endpoint in turn."""
        errors: list[str] = []
        for conn in self._ordered():
            try:
                try:
                    result = fn(conn)
                except grpc.RpcError as exc:
                    if conn.auth is None or not _auth_expired(exc):
                        raise
                    conn.auth.token(renew=True)
                    result = fn(conn)
            except grpc.RpcError as exc:
                code = exc.code()
                if code in _RETRY_CODES:
                    errors.append(f"{conn.endpoint.url}: {code.name.lower()}")
                    continue
                raise _map_rpc_error(exc) from None
            with self._lock:
                self._current = self._conns.index(conn)
            return result
        raise EtcdUnavailable("etcd unreachable (" + "; ".join(errors) + ")")

    async def _call(self, fn: Callable[[_Conn], T]) -> T:
        if self._closed:
            raise EtcdError("client closed")
        return await trio.to_thread.run_sync(self._call_sync, fn, abandon_on_cancel=True)

    @property
    def _timeout(self) -> float:
        return self.config.timeout

    def close(self) -> None:
        """Close every channel; running watches end with :class:`WatchBroken`."""
        self._closed = True
        for conn in self._conns:
            conn.close()

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- key-value --------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        """The key's current value, or None."""
        _, kvs = await self._range(key, prefix=False, revision=None)
        return kvs[0] if kvs else None

    async def get_with_revision(self, key: str) -> tuple[int, KeyValue | None]:
        """The key's value (or None) and the revision it was read at, to watch from after."""
        revision, kvs = await self._range(key, prefix=False, revision=None)
        return revision, (kvs[0] if kvs else None)

    async def get_prefix(
        self, prefix: str, revision: int | None = None
    ) -> tuple[int, list[KeyValue]]:
        """Every key under ``prefix`` at one revision, and that revision."""
        return await self._range(prefix, prefix=True, revision=revision)

    async def _range(
        self, key: str, *, prefix: bool, revision: int | None
    ) -> tuple[int, list[KeyValue]]:
        req = etcdrpc.RangeRequest(key=key.encode())
        if prefix:
            req.range_end = prefix_end(key)
        if revision:
            req.revision = revision

        def call(conn: _Conn) -> Any:
            return conn.kv.Range(req, self._timeout)

        try:
            resp = await self._call(call)
        except EtcdCompacted as exc:
            raise EtcdCompacted(exc.compact_revision, str(exc)) from None
        return resp.header.revision, [KeyValue.from_pb(kv) for kv in resp.kvs]

    async def put(self, key: str, value: bytes, lease: int = 0) -> int:
        """Write a key; returns the new revision."""
        req = etcdrpc.PutRequest(key=key.encode(), value=value, lease=lease)
        resp = await self._call(lambda c: c.kv.Put(req, self._timeout))
        return int(resp.header.revision)

    async def delete(self, key: str, prefix: bool = False) -> tuple[int, int]:
        """Delete a key (or a prefix); returns (revision, number deleted)."""
        req = etcdrpc.DeleteRangeRequest(key=key.encode())
        if prefix:
            req.range_end = prefix_end(key)
        resp = await self._call(lambda c: c.kv.DeleteRange(req, self._timeout))
        return int(resp.header.revision), int(resp.deleted)

    async def txn(
        self, compare: Sequence[Compare], success: Sequence[Op] = (), failure: Sequence[Op] = ()
    ) -> TxnResult:
        """One atomic transaction: if every ``compare`` holds run ``success``, else ``failure``."""
        req = etcdrpc.TxnRequest(
            compare=[c.to_pb() for c in compare],
            success=[_op_pb(o) for o in success],
            failure=[_op_pb(o) for o in failure],
        )
        resp = await self._call(lambda c: c.kv.Txn(req, self._timeout))
        ranges = tuple(
            tuple(KeyValue.from_pb(kv) for kv in r.response_range.kvs)
            for r in resp.responses
            if r.WhichOneof("response") == "response_range"
        )
        return TxnResult(bool(resp.succeeded), int(resp.header.revision), ranges)

    async def compact(self, revision: int, physical: bool = True) -> None:
        """Drop history before ``revision`` (tests use this to force watch compaction)."""
        req = etcdrpc.CompactionRequest(revision=revision, physical=physical)
        await self._call(lambda c: c.kv.Compact(req, max(self._timeout, 10.0)))

    # -- leases -----------------------------------------------------------------------------

    async def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; returns its id."""
        req = etcdrpc.LeaseGrantRequest(TTL=ttl, ID=0)
        resp = await self._call(lambda c: c.lease.LeaseGrant(req, self._timeout))
        if resp.error:
            raise EtcdError(f"lease grant failed: {resp.error}")
        return int(resp.ID)

    async def keepalive(self, lease_id: int) -> int:
        """Renew a lease once; returns its new TTL, or 0 if etcd no longer knows it."""
        req = etcdrpc.LeaseKeepAliveRequest(ID=lease_id)

        def call(conn: _Conn) -> int:
            for resp in conn.lease.LeaseKeepAlive(iter([req]), self._timeout):
                return int(resp.TTL)
            raise grpc.RpcError()  # pragma: no cover - stream ended without an answer

        return await self._call(call)

    async def lease_ttl(self, lease_id: int) -> int:
        """Seconds the lease has left; -1 if it has expired or never existed."""
        req = etcdrpc.LeaseTimeToLiveRequest(ID=lease_id)
        resp = await self._call(lambda c: c.lease.LeaseTimeToLive(req, self._timeout))
        return int(resp.TTL)

    async def revoke(self, lease_id: int) -> None:
        """Revoke a lease, deleting its keys; an unknown lease is not an error."""
        req = etcdrpc.LeaseRevokeRequest(ID=lease_id)
        try:
            await self._call(lambda c: c.lease.LeaseRevoke(req, self._timeout))
        except EtcdError as exc:
            if "not found" not in str(exc):
                raise

    # -- maintenance ------------------------------------------------------------------------

    async def status(self) -> list[MemberStatus]:
        """Status of every endpoint that answers (unreachable ones are left out)."""

        def one(conn: _Conn) -> MemberStatus | None:
            try:
                r = conn.maintenance.Status(etcdrpc.StatusRequest(), self._timeout)
            except grpc.RpcError:
                return None
            return MemberStatus(
                conn.endpoint.url, r.header.member_id, r.leader, r.raftTerm, r.header.revision
            )

        def all_status() -> list[MemberStatus]:
            return [s for s in (one(c) for c in self._conns) if s is not None]

        return await trio.to_thread.run_sync(all_status, abandon_on_cancel=True)

    # -- watch ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def watch(
        self,
        key: str,
        *,
        start_revision: int = 0,
        prefix: bool = True,
        buffer: int = 64,
    ) -> AsyncIterator[trio.MemoryReceiveChannel[WatchItem]]:
        """Watch ``key`` (or the prefix) from ``start_revision``.

        Yields a channel of :class:`WatchItem`; after a :class:`WatchCompacted` or
        :class:`WatchBroken` the channel ends. A slow reader stalls the stream (backpressure)
        rather than losing events.
        """
        send, recv = trio.open_memory_channel[WatchItem](buffer)
        create = etcdrpc.WatchCreateRequest(
            key=key.encode(), start_revision=start_revision, progress_notify=True
        )
        if prefix:
            create.range_end = prefix_end(key)
        conn = self._ordered()[0]
        stream = WatchStream(conn.watch, conn.endpoint.url, create, send,
                             trio.lowlevel.current_trio_token())
        stream.start()
        try:
            async with recv:
                yield recv
        finally:
            stream.stop()


def _op_pb(op: Op) -> Any:
    match op:
        case Put(key, value, lease, ignore_lease):
            return etcdrpc.RequestOp(
                request_put=etcdrpc.PutRequest(
                    key=key.encode(), value=value, lease=lease, ignore_lease=ignore_lease
                )
            )
        case Delete(key, prefix):
            req = etcdrpc.DeleteRangeRequest(key=key.encode())
            if prefix:
                req.range_end = prefix_end(key)
            return etcdrpc.RequestOp(request_delete_range=req)
        case Get(key, prefix):
            rreq = etcdrpc.RangeRequest(key=key.encode())
            if prefix:
                rreq.range_end = prefix_end(key)
            return etcdrpc.RequestOp(request_range=rreq)
    raise TypeError(f"not a transaction operation: {op!r}")
