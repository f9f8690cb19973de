"""Identifiers in Baseten's style: short, lowercase, URL-safe."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_lowercase + string.digits


def new_id(length: int = 8) -> str:
    # 36**8 ≈ 2.8e12: collisions are negligible at the scale one control plane holds, and the
    # primary key still rejects a duplicate.
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_replica_id() -> str:
    """Replicas are named by a 5-character short id, as Baseten's logs filter expects."""
    return new_id(5)
