"""Sans-IO TURN client core: one allocation's control plane (RFC 8656 §7-§12).

It builds Allocate, CreatePermission, ChannelBind and Refresh requests, retransmits them over
UDP, answers 401 (learn realm and nonce, then authenticate) and 438 (take the fresh nonce, send
again), keeps the allocation, permissions and channel bindings alive with refresh timers, and
deletes the allocation with a Refresh of lifetime 0. It never touches a socket or a clock: the
driver passes ``now`` (seconds, any monotonic origin) and sends what :meth:`datagrams_to_send`
returns to the server. ChannelData is deliberately not routed through this core: the benchmark's
hot loop frames and parses it directly, so the core costs nothing per relayed packet.
"""

from __future__ import annotations

import enum
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_address

from turn.stun import (
    TRANSPORT_UDP,
    Attribute,
    ChannelNumber,
    ErrorCode,
    Lifetime,
    MessageClass,
    Method,
    Nonce,
    Realm,
    RequestedTransport,
    Software,
    StunDecodeError,
    StunMessage,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
    long_term_key,
    parse_message,
)

Address = tuple[str, int]

#: RFC 8656 §9: permissions live 300 s, channel bindings 600 s; refresh comfortably before.
PERMISSION_REFRESH = 240.0
CHANNEL_REFRESH = 540.0
#: How many 438 Stale Nonce answers one request may get before we call it a failure.
MAX_STALE_NONCE_RETRIES = 3


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How one benchmark client authenticates and how patient it is."""

    #: TURN REST username (``<expiry>:<user>`` or ``<expiry>:<region>:<participant>``).
    username: str
    #: Its password, ``base64(HMAC-SHA1(secret, username))``.
    password: str
    #: Realm to use in the key; None takes the realm of the server's 401 (the usual case).
    realm: str | None = None
    #: Requested allocation lifetime in seconds; refreshed at half of what the server grants.
    lifetime: int = 600
    #: First retransmission interval; doubles per retransmission (RFC 8489 §6.2.1).
    rto: float = 0.2
    #: Transmissions of one request before it fails (loopback rarely needs more than one).
    max_transmits: int = 4
    #: A request that got no answer this long after its first transmission has failed.
    timeout: float = 3.0
    #: SOFTWARE attribute, so server logs show where the load came from ("" sends none).
    software: str = "regio-bench-turn"
    #: FINGERPRINT on requests without credentials. Browsers' first Allocate carries neither
    #: SOFTWARE nor FINGERPRINT (36 bytes): the first-contact probe sends exactly that.
    fingerprint_unauthenticated: bool = True


class ClientEvent:
    """Base of the events :meth:`TurnClient.next_event` returns."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Allocated(ClientEvent):
    """The allocation exists: ``relayed`` is where peers reach this client."""

    relayed: Address
    mapped: Address | None
    lifetime: int


@dataclass(frozen=True, slots=True)
class PeerReady(ClientEvent):
    """Permission installed and ``channel`` bound to ``peer``: ChannelData may flow."""

    peer: Address
    channel: int


@dataclass(frozen=True, slots=True)
class Refreshed(ClientEvent):
    """A Refresh succeeded; the allocation now lives ``lifetime`` more seconds."""

    lifetime: int


@dataclass(frozen=True, slots=True)
class Closed(ClientEvent):
    """The allocation is gone (Refresh lifetime 0 answered, or already unknown: 437)."""


@dataclass(frozen=True, slots=True)
class Failed(ClientEvent):
    """A request failed: an error response (``code``) or no answer at all (``code`` None)."""

    method: str
    code: int | None
    reason: str

    def describe(self) -> str:
        if self.code is None:
            return f"{self.method}: {self.reason}"
        return f"{self.method} answered {self.code} {self.reason}".rstrip()


class State(enum.Enum):
    IDLE = "idle"
    ALLOCATING = "allocating"
    ALLOCATED = "allocated"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"


@dataclass(slots=True)
class _Transaction:
    kind: str
    method: Method
    attrs: tuple[Attribute, ...]
    data: bytes
    first_sent: float
    next_send: float
    interval: float
    transmits: int = 1
    stale_retries: int = 0
    authenticated: bool = False


@dataclass(slots=True)
class _Binding:
    peer: Address
    channel: int
    permission_ok: bool = False
    channel_ok: bool = False
    announced: bool = False


def _method_name(method: int) -> str:
    try:
        return Method(method).name.replace("_", "-").title().replace("-", "")
    except ValueError:
        return f"method 0x{method:03x}"


@dataclass
class TurnClient:
    """One TURN allocation over UDP, driven by the caller's clock."""

    config: ClientConfig
    new_transaction_id: Callable[[], bytes] = field(default=lambda: secrets.token_bytes(12))

    def __post_init__(self) -> None:
        self.state = State.IDLE
        self.realm: str | None = self.config.realm
        self.nonce: str | None = None
        self.key: bytes | None = None
        self.relayed: Address | None = None
        self.granted_lifetime = 0
        self.dropped = 0
        self._pending: dict[bytes, _Transaction] = {}
        self._outbox: list[bytes] = []
        self._events: deque[ClientEvent] = deque()
        self._bindings: dict[Address, _Binding] = {}
        self._refresh_at: float | None = None
        self._permission_refresh_at: float | None = None
        self._channel_refresh_at: float | None = None

    # -- API calls --------------------------------------------------------------------------

    def allocate(self, now: float) -> None:
        """Ask for a UDP relay. The first attempt carries no credentials; the 401 tells us the
        realm and nonce, exactly as browsers and coturn's own client do."""
        if self.state is not State.IDLE:
            raise RuntimeError(f"allocate() in state {self.state.value}")
        self.state = State.ALLOCATING
        attrs = (RequestedTransport(TRANSPORT_UDP), Lifetime(self.config.lifetime))
        self._request("allocate", Method.ALLOCATE, attrs, now)

    def bind_peer(self, peer: Address, channel: int, now: float) -> None:
        """CreatePermission for ``peer`` and bind ``channel`` to it (two transactions)."""
        if self.state is not State.ALLOCATED:
            raise RuntimeError(f"bind_peer() in state {self.state.value}")
        self._bindings[peer] = _Binding(peer, channel)
        self._send_binding_requests(peer, channel, now)
        self._permission_refresh_at = now + PERMISSION_REFRESH
        self._channel_refresh_at = now + CHANNEL_REFRESH

    def close(self, now: float) -> None:
        """Delete the allocation (Refresh with LIFETIME 0); :class:`Closed` follows."""
        if self.state in (State.CLOSED, State.CLOSING):
            return
        if self.state is not State.ALLOCATED:
            self._pending.clear()
            self.state = State.CLOSED
            self._events.append(Closed())
            return
        self.state = State.CLOSING
        self._refresh_at = self._permission_refresh_at = self._channel_refresh_at = None
        self._pending.clear()
        self._request("close", Method.REFRESH, (Lifetime(0),), now)

    # -- driver interface -------------------------------------------------------------------

    def datagrams_to_send(self, now: float) -> list[bytes]:
        """Datagrams for the server, oldest first."""
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> ClientEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The earliest deadline: a retransmission, a give-up, or a refresh."""
        deadlines = [t.next_send for t in self._pending.values()]
        deadlines += [t.first_sent + self.config.timeout for t in self._pending.values()]
        for at in (self._refresh_at, self._permission_refresh_at, self._channel_refresh_at):
            if at is not None:
                deadlines.append(at)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        for tid, txn in list(self._pending.items()):
            if now >= txn.first_sent + self.config.timeout:
                del self._pending[tid]
                waited = now - txn.first_sent
                self._fail(txn, None, f"no response from the TURN server in {waited:.1f} s")
            elif now >= txn.next_send:
                self._outbox.append(txn.data)
                txn.transmits += 1
                txn.interval *= 2
                # After the last transmission only the give-up deadline remains.
                last = txn.transmits >= self.config.max_transmits
                txn.next_send = float("inf") if last else now + txn.interval
        if self._refresh_at is not None and now >= self._refresh_at:
            self._refresh_at = None
            self._request("refresh", Method.REFRESH, (Lifetime(self.config.lifetime),), now)
        if self._permission_refresh_at is not None and now >= self._permission_refresh_at:
            self._permission_refresh_at = now + PERMISSION_REFRESH
            for b in self._bindings.values():
                self._request("permission", Method.CREATE_PERMISSION, self._peer(b.peer), now)
        if self._channel_refresh_at is not None and now >= self._channel_refresh_at:
            self._channel_refresh_at = now + CHANNEL_REFRESH
            for b in self._bindings.values():
                attrs = (ChannelNumber(b.channel), *self._peer(b.peer))
                self._request("channel", Method.CHANNEL_BIND, attrs, now)

    def receive_datagram(self, data: bytes, now: float) -> None:
        """A STUN datagram from the server. Anything unparseable or unmatched is dropped."""
        try:
            message = parse_message(data)
        except StunDecodeError:
            self.dropped += 1
            return
        txn = self._pending.get(message.transaction_id)
        if txn is None or message.cls not in (MessageClass.SUCCESS, MessageClass.ERROR):
            self.dropped += 1
            return
        if message.has_integrity and self.key is not None and not message.integrity_ok(self.key):
            self.dropped += 1  # a forged or corrupted answer: keep waiting for the real one
            return
        del self._pending[message.transaction_id]
        if message.cls is MessageClass.SUCCESS:
            self._on_success(txn, message, now)
        else:
            self._on_error(txn, message, now)

    # -- internals --------------------------------------------------------------------------

    @staticmethod
    def _peer(peer: Address) -> tuple[Attribute, ...]:
        return (XorPeerAddress(ip_address(peer[0]), peer[1]),)

    def _send_binding_requests(self, peer: Address, channel: int, now: float) -> None:
        self._request("permission", Method.CREATE_PERMISSION, self._peer(peer), now)
        self._request(
            "channel", Method.CHANNEL_BIND, (ChannelNumber(channel), *self._peer(peer)), now
        )

    def _request(
        self,
        kind: str,
        method: Method,
        attrs: tuple[Attribute, ...],
        now: float,
        stale_retries: int = 0,
    ) -> None:
        tid = self.new_transaction_id()
        software = ((Software(self.config.software),)
                    if method is Method.ALLOCATE and self.config.software else ())
        message = StunMessage(method, MessageClass.REQUEST, tid, (*attrs, *software))
        authenticated = self.nonce is not None and self.key is not None
        if authenticated:
            assert self.realm is not None and self.key is not None and self.nonce is not None
            message = StunMessage(
                method,
                MessageClass.REQUEST,
                tid,
                (
                    *message.attributes,
                    Username(self.config.username),
                    Realm(self.realm),
                    Nonce(self.nonce),
                ),
            )
            data = message.encode(integrity_key=self.key, fingerprint=True)
        else:
            data = message.encode(fingerprint=self.config.fingerprint_unauthenticated)
        self._pending[tid] = _Transaction(
            kind,
            method,
            attrs,
            data,
            first_sent=now,
            next_send=now + self.config.rto,
            interval=self.config.rto,
            stale_retries=stale_retries,
            authenticated=authenticated,
        )
        self._outbox.append(data)

    def _on_success(self, txn: _Transaction, message: StunMessage, now: float) -> None:
        if txn.kind == "allocate":
            relayed = message.get(XorRelayedAddress)
            if relayed is None:
                self._fail(txn, None, "success response without XOR-RELAYED-ADDRESS")
                return
            mapped = message.get(XorMappedAddress)
            lifetime = message.get(Lifetime)
            self.granted_lifetime = lifetime.seconds if lifetime else self.config.lifetime
            self.relayed = (str(relayed.address), relayed.port)
            self.state = State.ALLOCATED
            self._schedule_refresh(now)
            self._events.append(
                Allocated(
                    self.relayed,
                    (str(mapped.address), mapped.port) if mapped else None,
                    self.granted_lifetime,
                )
            )
        elif txn.kind == "refresh":
            lifetime = message.get(Lifetime)
            self.granted_lifetime = lifetime.seconds if lifetime else self.config.lifetime
            self._schedule_refresh(now)
            self._events.append(Refreshed(self.granted_lifetime))
        elif txn.kind == "close":
            self._closed()
        elif txn.kind in ("permission", "channel"):
            self._binding_done(txn)

    def _binding_done(self, txn: _Transaction) -> None:
        peer_attr = next(a for a in txn.attrs if isinstance(a, XorPeerAddress))
        binding = self._bindings.get((str(peer_attr.address), peer_attr.port))
        if binding is None:
            return
        if txn.kind == "permission":
            binding.permission_ok = True
        else:
            binding.channel_ok = True
        if binding.permission_ok and binding.channel_ok and not binding.announced:
            binding.announced = True
            self._events.append(PeerReady(binding.peer, binding.channel))

    def _on_error(self, txn: _Transaction, message: StunMessage, now: float) -> None:
        error = message.get(ErrorCode)
        code = error.code if error else 0
        reason = error.reason if error else "(no ERROR-CODE)"
        if code in (401, 438):
            realm, nonce = message.get(Realm), message.get(Nonce)
            retry_401 = code == 401 and not txn.authenticated
            retry_438 = code == 438 and txn.stale_retries < MAX_STALE_NONCE_RETRIES
            if nonce is not None and (retry_401 or retry_438):
                if self.config.realm is None and realm is not None:
                    self.realm = realm.value
                if self.realm is None:
                    self._fail(txn, code, f"{reason} without a REALM to authenticate in")
                    return
                self.nonce = nonce.value
                self.key = long_term_key(self.config.username, self.realm, self.config.password)
                retries = txn.stale_retries + (code == 438)
                self._request(txn.kind, txn.method, txn.attrs, now, stale_retries=retries)
                return
        if txn.kind == "close" and code == 437:
            self._closed()  # the server already forgot the allocation: that is what we wanted
            return
        self._fail(txn, code, reason)

    def _schedule_refresh(self, now: float) -> None:
        lifetime = max(self.granted_lifetime, 2)
        self._refresh_at = now + lifetime / 2

    def _closed(self) -> None:
        self.state = State.CLOSED
        self._refresh_at = self._permission_refresh_at = self._channel_refresh_at = None
        self._events.append(Closed())

    def _fail(self, txn: _Transaction, code: int | None, reason: str) -> None:
        if txn.kind == "close":
            self._pending.clear()
            self.state = State.CLOSED
            self._events.append(Closed())
            return
        if txn.kind == "allocate":
            self.state = State.FAILED
        self._events.append(Failed(_method_name(txn.method), code, reason))


__all__ = [
    "Address",
    "Allocated",
    "ClientConfig",
    "ClientEvent",
    "Closed",
    "Failed",
    "PeerReady",
    "Refreshed",
    "State",
    "TurnClient",
]
