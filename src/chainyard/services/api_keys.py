"""API keys: creation, listing, revocation, and turning a presented key into an `Actor`."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import os
import pathlib
import re
import secrets
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from chainyard.domain.errors import Forbidden, Invalid, NotFound, RateLimited, Unauthorized
from chainyard.domain.ids import new_id
from chainyard.domain.text import check_text
from chainyard.services import audit
from chainyard.services.context import KEY_TYPE_RANK, Actor, Core
from chainyard.store.workspaces import ApiKey, Workspace

KEY_TYPES = frozenset(KEY_TYPE_RANK)
# The audit log's vocabulary for key types differs from the API's.
_AUDIT_KEY_TYPE = {
    "PERSONAL": "PERSONAL",
    "WORKSPACE_MANAGE_ALL": "CREATOR_SERVICE_ACCOUNT",
    "WORKSPACE_MANAGE_API_KEYS": "MANAGE_API_KEYS_SERVICE_ACCOUNT",
    "WORKSPACE_INVOKE": "INVOKE_ALL_MODELS_SERVICE_ACCOUNT",
    "WORKSPACE_EXPORT_METRICS": "EXPORT_METRICS_ALL_MODELS_SERVICE_ACCOUNT",
}
_BOOTSTRAP_KEY = re.compile(r"^[A-Za-z0-9_\-.~]{20,200}$")
_WORKSPACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def split_prefix(raw: str) -> str:
    """Keys look like `<prefix>.<secret>`; a key without a dot uses its first 8 characters."""
    prefix, dot, _ = raw.partition(".")
    return prefix if dot and prefix else raw[:8]


def ensure_workspace(session: Session, name: str) -> Workspace:
    if not _WORKSPACE_NAME.match(name):
        raise Invalid(f"invalid workspace name '{name}'", code="INVALID_NAME")
    ws = session.scalar(select(Workspace).where(Workspace.name == name))
    if ws is None:
        ws = Workspace(id=new_id(), name=name)
        session.add(ws)
        session.flush()
    return ws


def _new_raw_key() -> str:
    return f"{new_id(8)}.{secrets.token_urlsafe(32)}"


def _check_name(name: str | None) -> None:
    # The column holds 200 characters, and PostgreSQL text cannot hold NUL.
    if name is not None and (len(name) > 200 or "\x00" in name):
        raise Invalid("API key names are at most 200 characters, without NUL", code="INVALID_NAME")
    if name is not None:
        # The admin CLI's --name can carry one (a non-UTF-8 argument); the API refuses it earlier.
        check_text(name, "the API key's name")


def _add_key(session: Session, ws: Workspace, raw: str, key_type: str, name: str | None) -> ApiKey:
    key = ApiKey(
        id=new_id(),
        workspace_id=ws.id,
        prefix=split_prefix(raw),
        key_hash=hash_key(raw),
        name=name,
        type=key_type,
    )
    session.add(key)
    session.flush()
    return key


def admin_create_key(core: Core, workspace: str, key_type: str, name: str | None = None) -> str:
    """Operator path (CLI, no API key needed): creates the workspace if needed and a new key."""
    if key_type not in KEY_TYPES:
        raise Invalid(f"unknown key type '{key_type}'", code="INVALID_KEY_TYPE")
    _check_name(name)
    raw = _new_raw_key()
    with core.db.write() as session:
        ws = ensure_workspace(session, workspace)
        key = _add_key(session, ws, raw, key_type, name)
        actor = Actor(ws.id, ws.name, key_type="SYSTEM", source="OTHER")
        _audit_key(session, actor, "API_KEY_CREATED", key)
    return raw


def ensure_bootstrap_key(core: Core, raw: str, workspace: str = "default") -> None:
    """Makes sure `raw` exists as a full-access key of `workspace` (idempotent)."""
    if not _BOOTSTRAP_KEY.match(raw):
        raise Invalid(
            "CHAINYARD_BOOTSTRAP_API_KEY must be 20 to 200 URL-safe characters",
            code="INVALID_BOOTSTRAP_KEY",
        )
    with core.db.write() as session:
        existing = session.scalar(select(ApiKey).where(ApiKey.prefix == split_prefix(raw)))
        if existing is not None:
            if not hmac.compare_digest(existing.key_hash, hash_key(raw)):
                raise Invalid(
                    "another key with the bootstrap key's prefix exists", code="KEY_PREFIX_TAKEN"
                )
            return
        ws = ensure_workspace(session, workspace)
        _add_key(session, ws, raw, "WORKSPACE_MANAGE_ALL", "bootstrap")


def ensure_initial_key(core: Core, path: pathlib.Path) -> bool:
    """On a store without any key, creates a full-access key of `default` and writes it to `path`
    (mode 0600), so that a first `chainyard serve` is usable at once. Returns True if it did."""
    with core.db.write() as session:
        if session.scalar(select(ApiKey.id).limit(1)) is not None:
            return False
        raw = _new_raw_key()
        ws = ensure_workspace(session, "default")
        key = _add_key(session, ws, raw, "WORKSPACE_MANAGE_ALL", "initial")
        _audit_key(
            session,
            Actor(ws.id, ws.name, key_type="SYSTEM", source="SYSTEM"),
            "API_KEY_CREATED",
            key,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(raw + "\n")
    return True


# How long a successful authentication is reused. A deleted key stops working at once on the
# server that deleted it, and within this time on other servers sharing the database.
AUTH_CACHE_SECONDS = 2.0
_AUTH_CACHE_MAX = 10_000


def cached_actor(core: Core, raw: str) -> Actor | None:
    """The actor of a key authenticated within the last AUTH_CACHE_SECONDS, without the store."""
    hit = core.auth_cache.get(hash_key(raw))
    if hit is None or hit[0] < time.monotonic():
        return None
    return hit[1]


def remembered_actor(core: Core, raw: str) -> Actor | None:
    """The actor of a key authenticated before, however long ago (see `cached_actor`)."""
    hit = core.auth_cache.get(hash_key(raw))
    return None if hit is None else hit[1]


def recheck(core: Core, raw: str) -> None:
    """Reads a remembered key again from the store: remembered anew while it is valid, forgotten
    once it is not (revoked by another server)."""
    core.auth_cache.pop(hash_key(raw), None)
    with contextlib.suppress(Unauthorized):
        authenticate(core, raw)


def authenticate(core: Core, raw: str, client: str | None = None) -> Actor:
    """The actor of key `raw`, presented from address `client` (None: not throttled, as for
    callers inside the server). Failed lookups count toward the client's failure limit."""
    if not raw:
        raise Unauthorized("missing API key")
    actor = cached_actor(core, raw)
    if actor is not None:
        return actor
    throttle = core.auth_throttle if client is not None else None
    if throttle is not None and client is not None:
        wait = throttle.wait(client)
        if wait > 0:
            retry_after = math.ceil(wait * 10) / 10
            raise RateLimited(
                "too many failed authentications from this address "
                f"(at most {throttle.burst} at once, then {throttle.per_second:g} per second); "
                f"retry after {retry_after:g} s",
                retry_after=retry_after,
            )
    try:
        actor = _authenticate(core, raw)
    except Unauthorized:
        if throttle is not None and client is not None:
            throttle.failed(client)
        raise
    if len(core.auth_cache) >= _AUTH_CACHE_MAX:
        core.auth_cache.clear()
    core.auth_cache[hash_key(raw)] = (time.monotonic() + AUTH_CACHE_SECONDS, actor)
    return actor


def _authenticate(core: Core, raw: str) -> Actor:
    with core.db.read() as session:
        row = session.execute(
            select(ApiKey, Workspace)
            .join(Workspace, Workspace.id == ApiKey.workspace_id)
            .where(ApiKey.prefix == split_prefix(raw))
        ).first()
    if row is None or not hmac.compare_digest(row[0].key_hash, hash_key(raw)):
        raise Unauthorized("invalid API key")
    key, ws = row
    return Actor(ws.id, ws.name, key_type=key.type, key_prefix=key.prefix, key_name=key.name)


def _require_key_manager(actor: Actor) -> None:
    if not actor.can_manage_keys:
        raise Forbidden("this API key may not manage API keys")


def create_key(
    core: Core, actor: Actor, key_type: str, name: str | None, model_ids: list[str] | None
) -> str:
    _require_key_manager(actor)
    if key_type not in KEY_TYPES:
        raise Invalid(f"unknown key type '{key_type}'", code="INVALID_KEY_TYPE")
    if model_ids:
        # Keys scoped to single models are Baseten's model feature; chains have no such scope.
        raise Invalid("model_ids scoping is not supported for chains", code="UNSUPPORTED")
    _check_name(name)
    if not actor.may_create_key(key_type):
        # Refused before the transaction: nothing is written, not even an audit row (the audit
        # log records changes, and this is none).
        allowed = sorted(t for t in KEY_TYPES if actor.may_create_key(t))
        raise Forbidden(
            f"an API key of type {actor.key_type} may not create a key of type {key_type}, "
            f"which may do more than itself; it may create {', '.join(allowed)}"
        )
    raw = _new_raw_key()
    with core.db.write() as session:
        ws = session.get_one(Workspace, actor.workspace_id)
        key = _add_key(session, ws, raw, key_type, name)
        _audit_key(session, actor, "API_KEY_CREATED", key)
    return raw


def list_keys(core: Core, actor: Actor) -> list[ApiKey]:
    _require_key_manager(actor)
    with core.db.read() as session:
        query = select(ApiKey).where(ApiKey.workspace_id == actor.workspace_id)
        return list(session.scalars(query.order_by(ApiKey.created_at, ApiKey.prefix)))


def delete_key(core: Core, actor: Actor, prefix: str) -> str:
    _require_key_manager(actor)
    with core.db.write() as session:
        key = session.scalar(
            select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.workspace_id == actor.workspace_id)
        )
        if key is None:
            raise NotFound(f"API key '{prefix}' not found")
        _audit_key(session, actor, "API_KEY_DELETED", key)
        session.delete(key)
    core.auth_cache.clear()
    return prefix


def _audit_key(session: Session, actor: Actor, event: str, key: ApiKey) -> None:
    audit.record(
        session,
        actor,
        event,
        {"api_key_id": key.id, "api_key_type": _AUDIT_KEY_TYPE[key.type], "prefix": key.prefix},
    )
