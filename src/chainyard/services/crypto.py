"""Encryption of secret values at rest (Fernet: AES-128-CBC with HMAC-SHA256)."""

from __future__ import annotations

import hashlib
import hmac
import os
import pathlib

from cryptography.fernet import Fernet, InvalidToken


class SecretCipher:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key

    def derive(self, purpose: str) -> bytes:
        """A key for another purpose, from the same secret, so that servers sharing
        CHAINYARD_SECRET_KEY agree on it. Never for a credential a replica presents: chainlet
        code that read the secret could forge it (chain keys are random, docs/security.md)."""
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).digest()

    @classmethod
    def from_data_dir(cls, data_dir: pathlib.Path) -> SecretCipher:
        """The key from CHAINYARD_SECRET_KEY, else from (or newly into) `<data_dir>/secret.key`.

        Several servers sharing one PostgreSQL must share the key: set CHAINYARD_SECRET_KEY on each.
        """
        env_key = os.environ.get("CHAINYARD_SECRET_KEY")
        if env_key:
            return cls(env_key.encode())
        path = data_dir / "secret.key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def encrypt(self, value: str) -> bytes:
        return self._fernet.encrypt(value.encode())

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted with this server's key") from exc
