"""Rotating secrets: the TURN REST shared secret and the join-token signing key.

Each lives in one key as a :class:`~control.schema.KeySet`: a current key plus superseded keys
that stay valid until their ``expires_at`` (rotation time + overlap). One key per secret makes a
rotation a single compare-and-swap, so two operators rotating at once cannot lose a key. Minting
always uses the current key and names its key id; verifiers accept any valid key by id, so
credentials minted just before a rotation keep working through the overlap window. Nodes see
rotations through their :class:`~control.view.ClusterView` (a watch), not by polling.

Key sets are stored sealed with the secrets key, which lives in a file outside etcd
(:mod:`control.secretbox`): writing and reading them needs that key, and a value found in clear
is refused, never used. Protect etcd itself with TLS and authentication as well.
"""

from __future__ import annotations

import base64
import secrets as _random
import time
from dataclasses import dataclass

from control import schema
from control.etcd import Compare, EtcdClient, EtcdError, Put
from control.schema import KeySet, SecretKey, SecretKind
from control.secretbox import is_sealed, load_box
from control.view import ClusterView

DEFAULT_OVERLAP = 3600.0
KEY_BYTES = 32


class SecretsUnavailable(LookupError):
    """The secret has not been initialised (``regio cluster init``)."""


def new_key(now: float | None = None) -> SecretKey:
    """A fresh random key with a unique, sortable key id."""
    created = time.time() if now is None else now
    kid = f"{int(created):x}-{_random.token_hex(3)}"
    secret = base64.urlsafe_b64encode(_random.token_bytes(KEY_BYTES)).decode().rstrip("=")
    return SecretKey(kid, secret, created, None)


def key_bytes(key: SecretKey) -> bytes:
    """The raw bytes of a key (its ``secret`` is unpadded URL-safe base64)."""
    return base64.urlsafe_b64decode(key.secret + "=" * (-len(key.secret) % 4))


def _seal(client: EtcdClient, key: str, keyset: KeySet) -> bytes:
    return load_box(client.config.secrets_key).seal(key, keyset.encode())


def _open(client: EtcdClient, key: str, stored: bytes) -> KeySet:
    return KeySet.decode(load_box(client.config.secrets_key).open(key, stored))


async def ensure_secrets(client: EtcdClient, which: tuple[SecretKind, ...] = schema.SECRET_KINDS
                         ) -> dict[SecretKind, KeySet]:
    """Create each secret if absent (idempotent); returns what is stored."""
    out: dict[SecretKind, KeySet] = {}
    for kind in which:
        key = schema.secrets_key(kind)
        first = new_key()
        keyset = KeySet(kind, first.kid, (first,))
        result = await client.txn([Compare(key, "version", "==", 0)],
                                  [Put(key, _seal(client, key, keyset))])
        if not result.succeeded:
            kv = await client.get(key)
            if kv is None:
                raise EtcdError(f"{kind} secret vanished during init")
            keyset = _open(client, key, kv.value)
        out[kind] = keyset
    return out


@dataclass(frozen=True, slots=True)
class Rotation:
    """The result of one rotation."""

    which: SecretKind
    previous: str | None
    """Key id that stopped being current (valid until ``previous_expires_at``)."""
    current: str
    previous_expires_at: float | None


async def rotate(client: EtcdClient, which: SecretKind, overlap: float = DEFAULT_OVERLAP,
                 attempts: int = 20) -> Rotation:
    """Add a new current key; the old current stays valid for ``overlap`` seconds more."""
    if overlap < 0:
        raise ValueError("overlap must not be negative")
    key = schema.secrets_key(which)
    for _ in range(attempts):
        now = time.time()
        kv = await client.get(key)
        fresh = new_key(now)
        if kv is None:
            keyset = KeySet(which, fresh.kid, (fresh,))
            guard = Compare(key, "version", "==", 0)
            previous, expires = None, None
        else:
            old = _open(client, key, kv.value)
            expires = now + overlap
            kept = tuple(
                k if k.kid != old.current else SecretKey(k.kid, k.secret, k.created_at, expires)
                for k in old.keys
                if k.kid == old.current or k.valid_at(now)
            )
            keyset = KeySet(which, fresh.kid, (*kept, fresh))
            guard = Compare(key, "mod", "==", kv.mod_revision)
            previous = old.current
        result = await client.txn([guard], [Put(key, _seal(client, key, keyset))])
        if result.succeeded:
            return Rotation(which, previous, fresh.kid, expires)
    raise EtcdError(f"{which} secret kept changing; rotation not recorded")


async def seal_stored(client: EtcdClient, which: tuple[SecretKind, ...] = schema.SECRET_KINDS
                      ) -> list[SecretKind]:
    """Seal key sets that an older version stored in clear (``regio secrets seal``); returns
    the kinds sealed now. Guarded by mod revision, so a concurrent rotation is never lost."""
    sealed: list[SecretKind] = []
    for kind in which:
        key = schema.secrets_key(kind)
        kv = await client.get(key)
        if kv is None or is_sealed(kv.value):
            continue
        keyset = KeySet.decode(kv.value)
        result = await client.txn([Compare(key, "mod", "==", kv.mod_revision)],
                                  [Put(key, _seal(client, key, keyset))])
        if not result.succeeded:
            raise EtcdError(f"{kind} secret changed while sealing; run it again")
        sealed.append(kind)
    return sealed


async def read_keyset(client: EtcdClient, which: SecretKind) -> KeySet | None:
    """The stored key set, opened with the client's secrets key (None if never created)."""
    key = schema.secrets_key(which)
    kv = await client.get(key)
    return None if kv is None else _open(client, key, kv.value)


def require_secrets(view: ClusterView, which: tuple[SecretKind, ...] = schema.SECRET_KINDS
                    ) -> None:
    """Open every stored key set once, so a node with a missing or wrong secrets key (or a
    secret stored in clear) stops at start with :class:`~control.secretbox.SecretsKeyError`
    instead of failing each request later."""
    for kind in which:
        view.keyset(kind)


class SecretsView:
    """Secrets as a node sees them, always current through the cluster view's watch."""

    def __init__(self, view: ClusterView) -> None:
        self.view = view

    def keyset(self, which: SecretKind) -> KeySet:
        keyset = self.view.keyset(which)
        if keyset is None:
            raise SecretsUnavailable(f"no {which} secret in etcd (run regio cluster init)")
        return keyset

    def current(self, which: SecretKind) -> SecretKey:
        """The key to mint or sign with now."""
        return self.keyset(which).current_key

    def valid(self, which: SecretKind, now: float | None = None) -> dict[str, SecretKey]:
        """Every key a verifier accepts now, by key id."""
        return self.keyset(which).valid_keys(time.time() if now is None else now)

    def key(self, which: SecretKind, kid: str, now: float | None = None) -> SecretKey | None:
        """The valid key with id ``kid``, or None (unknown or expired: reject)."""
        return self.valid(which, now).get(kid)
