"""Signing webhook bodies as Baseten does: `X-BASETEN-SIGNATURE: v1=<hex>[,v1=<hex>...]`, one
HMAC-SHA256 of the whole body per active secret of the workspace, newest first."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence

SIGNATURE_HEADER = "X-BASETEN-SIGNATURE"
VERSION = "v1"


def sign(body: bytes, secret: str) -> str:
    """The hex HMAC-SHA256 of `body` keyed by the secret's text (`whsec_...` included)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_header(body: bytes, secrets: Sequence[str]) -> str:
    """The header's value for `body`, one `v1=` entry per secret, in the order given (newest
    first). Every webhook is signed: no secret is a caller's error, not an unsigned webhook."""
    if not secrets:
        raise ValueError("a webhook needs at least one secret to be signed with")
    return ",".join(f"{VERSION}={sign(body, secret)}" for secret in secrets)


def signatures(header: str) -> list[str]:
    """The `v1` signatures a header carries (entries of other versions are skipped)."""
    found = []
    for entry in header.split(","):
        version, sep, value = entry.strip().partition("=")
        if sep and version == VERSION and value:
            found.append(value)
    return found


def verify(body: bytes, header: str, secrets: Iterable[str]) -> bool:
    """Whether one of the header's signatures is the body's under one of `secrets`: what a
    receiver checks (compared in constant time)."""
    carried = signatures(header)
    for secret in secrets:
        expected = sign(body, secret)
        # Every signature is compared, so the time taken says nothing of which one matched.
        if any([hmac.compare_digest(expected, value) for value in carried]):
            return True
    return False
