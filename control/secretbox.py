"""Secrets at rest in etcd: sealed with a key that lives outside etcd.

The TURN REST secret and the join-token key give anyone who reads them the power to mint TURN
credentials and join tokens. etcd is read by every node and by operators' tools, and its data
directory and backups are files on disks; so the key sets are stored sealed with AES-256-GCM
under a *secrets key* kept in a file (``--secrets-key FILE`` on every etcd-facing command, or
``$REGIO_SECRETS_KEY``), never in etcd. ``regio cluster up`` makes one for its local cluster.

A sealed value is JSON, ``{"sealed": 1, "alg": "A256GCM", "key_id": ..., "nonce": ...,
"data": ...}``. The etcd key name is the associated data, so a sealed value moved to another
key (the TURN secret pasted over the token key) fails to open. ``key_id`` is a short SHA-256
fingerprint of the secrets key: opening with another key says so precisely.

There is no clear-text fallback in either direction: writing without a key, reading without a
key, reading with the wrong key, and reading a value stored in clear are each a
:class:`SecretsKeyError` with a message that says what to do.

A key file holds 32 random bytes in URL-safe base64 on one line (``regio secrets new-key FILE``
writes one with mode 0600).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets as _random
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from control.clierror import CliError

ENV_VAR = "REGIO_SECRETS_KEY"
KEY_BYTES = 32
ALGORITHM = "A256GCM"


class SecretsKeyError(CliError):
    """The secrets key is missing, unreadable, wrong, or a stored secret is not sealed (an
    operator's fix, so one clear line from any command)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def write_key_file(path: str | Path) -> Path:
    """Create a new random key file (mode 0600); refuses to overwrite an existing one."""
    target = Path(path)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(_b64(_random.token_bytes(KEY_BYTES)) + "\n")
    return target


class SecretBox:
    """Seals and opens secret values with one secrets key."""

    __slots__ = ("_aead", "key_id", "path")

    def __init__(self, key: bytes, path: str = "") -> None:
        if len(key) != KEY_BYTES:
            raise SecretsKeyError(f"secrets key {path or ''} must be {KEY_BYTES} bytes, "
                                  f"not {len(key)}".replace("key  ", "key "))
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"regio secrets key\0" + key).hexdigest()[:16]
        self.path = path

    @classmethod
    def from_file(cls, path: str | Path) -> SecretBox:
        try:
            text = Path(path).read_text().strip()
        except OSError as exc:
            raise SecretsKeyError(
                f"secrets key file {path}: {exc.strerror or exc}") from None
        try:
            key = _unb64(text)
        except ValueError:
            raise SecretsKeyError(f"secrets key file {path} is not base64") from None
        if len(key) != KEY_BYTES:
            raise SecretsKeyError(
                f"secrets key file {path} holds {len(key)} bytes, not {KEY_BYTES}")
        return cls(key, str(path))

    def seal(self, etcd_key: str, plaintext: bytes) -> bytes:
        nonce = _random.token_bytes(12)
        data = self._aead.encrypt(nonce, plaintext, etcd_key.encode())
        return json.dumps({"sealed": 1, "alg": ALGORITHM, "key_id": self.key_id,
                           "nonce": _b64(nonce), "data": _b64(data)},
                          separators=(",", ":")).encode()

    def open(self, etcd_key: str, stored: bytes) -> bytes:
        envelope = parse_sealed(etcd_key, stored)
        if envelope.get("key_id") != self.key_id:
            raise SecretsKeyError(
                f"{etcd_key} was sealed with secrets key {envelope.get('key_id')}, but "
                f"{self.path or 'the key given'} is key {self.key_id}: use the cluster's key")
        try:
            return self._aead.decrypt(_unb64(str(envelope["nonce"])),
                                      _unb64(str(envelope["data"])), etcd_key.encode())
        except (InvalidTag, ValueError, KeyError):
            raise SecretsKeyError(
                f"{etcd_key} does not open with secrets key {self.key_id} (tampered, or "
                "copied from another key)") from None


def is_sealed(stored: bytes) -> bool:
    try:
        value = json.loads(stored)
    except ValueError:
        return False
    return isinstance(value, dict) and value.get("sealed") == 1


def parse_sealed(etcd_key: str, stored: bytes) -> dict[str, object]:
    """The sealed envelope, or :class:`SecretsKeyError` for anything stored in clear."""
    if not is_sealed(stored):
        raise SecretsKeyError(
            f"{etcd_key} is stored in clear in etcd: refusing to use it. Seal it with "
            "`regio secrets seal --secrets-key FILE` (or rotate it)")
    envelope: dict[str, object] = json.loads(stored)
    if envelope.get("alg") != ALGORITHM:
        raise SecretsKeyError(f"{etcd_key}: unknown sealing algorithm {envelope.get('alg')!r}")
    return envelope


def load_box(path: str | None) -> SecretBox:
    """The box for ``path`` (or ``$REGIO_SECRETS_KEY``); a clear error when neither is set."""
    chosen = path or os.environ.get(ENV_VAR)
    if not chosen:
        raise SecretsKeyError(
            "secrets in etcd are sealed: give the secrets key file with --secrets-key FILE "
            f"(or ${ENV_VAR}); `regio secrets new-key FILE` makes one")
    return SecretBox.from_file(chosen)


__all__ = ["ENV_VAR", "SecretBox", "SecretsKeyError", "is_sealed", "load_box", "parse_sealed",
           "write_key_file"]
