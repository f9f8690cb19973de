"""Identifiers in Baseten's style: short, lowercase, URL-safe."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits


# The largest multiple of 36 a byte can hold: bytes at or above it are dropped, so that every
# character stays equally likely.
_USABLE_BYTE = 256 - 256 % len(_ALPHABET)


def new_id(length: int = 8) -> str:
    # 36**8 ≈ 2.8e12: collisions are negligible at the scale one control plane holds, and the
    # primary key still rejects a duplicate. One read of the system's random source per id
    # (secrets.choice reads once per character).
    chars: list[str] = []
    while len(chars) < length:
        for byte in secrets.token_bytes(length + 2):
            if byte < _USABLE_BYTE and len(chars) < length:
                chars.append(_ALPHABET[byte % len(_ALPHABET)])
    return "".join(chars)


def new_replica_id() -> str:
    """Replicas are named by a 5-character short id, as Baseten's logs filter expects."""
    return new_id(5)
