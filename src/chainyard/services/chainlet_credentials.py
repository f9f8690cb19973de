"""The credential a replica presents when it calls its dependencies through the gateway's
internal route (`/internal/chainlets/{id}/predict`).

A token is random (`secrets.token_urlsafe(32)`), issued for one chainlet of one deployment, and
only its SHA-256 is stored: neither the server's key nor the database gives a token away. It
opens exactly the chainlets of the same deployment that the calling chainlet declared as
dependencies. The reconciler keeps the plain token in memory while it runs and issues a new one
after a restart; older tokens stay valid (a Ray replica may outlive the server that started it)
until their deployment is deleted, which deletes them with it.

Verified tokens are cached for CACHE_SECONDS, so that a dependency call costs no store read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time

from sqlalchemy import select

from chainyard.domain.errors import Forbidden, NotFound, Unauthorized
from chainyard.services.context import Core
from chainyard.store.chains import ChainDeployment, Chainlet
from chainyard.store.credentials import ChainletCredential

CACHE_SECONDS = 10.0
_CACHE_MAX = 10_000
# The one answer to every token that is not a live one: it does not say why.
INVALID = "invalid chain key"


@dataclasses.dataclass(frozen=True)
class Callee:
    """A chainlet a token may call, as the gateway needs it to forward the call."""

    chainlet_id: str
    name: str
    deployment_id: str
    deployment_status: str
    predict_concurrency: int


@dataclasses.dataclass(frozen=True)
class Reach:
    """What one verified token may call: its chainlet's declared dependencies, by chainlet id."""

    deployment_id: str
    caller_chainlet_id: str
    callees: dict[str, Callee]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(core: Core, deployment_id: str, chainlet_id: str) -> str:
    """A new token for the chainlet's replicas; only its hash is stored. NotFound when the
    deployment was deleted meanwhile."""
    issued = issue_many(core, [(deployment_id, chainlet_id)])
    if chainlet_id not in issued:
        raise NotFound(f"chain deployment '{deployment_id}' no longer exists")
    return issued[chainlet_id]


def issue_many(core: Core, chainlets: list[tuple[str, str]]) -> dict[str, str]:
    """`issue` for many (deployment id, chainlet id) in one transaction: a restarted server
    issues one per running chainlet that calls another, tens of thousands at once. Chainlets
    whose deployment or chainlet is gone by then get none (they are not in the answer)."""
    with core.db.write() as session:
        # The deployments are share-locked first, in id order, as a delete locks them before
        # their chainlets (services/deployments.py `lock_for_delete`): inserting keys chainlet
        # by chainlet beside a delete that removes them one by one deadlocked on PostgreSQL.
        live = set(
            session.scalars(
                select(ChainDeployment.id)
                .where(ChainDeployment.id.in_({d for d, _ in chainlets}))
                .order_by(ChainDeployment.id)
                .with_for_update(key_share=True)
            )
        )
        present = set(
            session.scalars(
                select(Chainlet.id).where(Chainlet.id.in_({c for d, c in chainlets if d in live}))
            )
        )
        tokens = {c: secrets.token_urlsafe(32) for d, c in chainlets if c in present}
        session.add_all(
            ChainletCredential(
                token_hash=token_hash(tokens[chainlet_id]),
                deployment_id=deployment_id,
                chainlet_id=chainlet_id,
            )
            for deployment_id, chainlet_id in chainlets
            if chainlet_id in tokens
        )
    return tokens


def reach(core: Core, token: str) -> Reach:
    """What the token may call; Unauthorized (always the same message) for any token that is not
    a live one."""
    if not token:
        raise Unauthorized(INVALID)
    digest = token_hash(token)
    now = time.monotonic()
    hit = core.chain_key_cache.get(digest)
    if hit is not None and hit[0] >= now:
        cached: Reach = hit[1]
        return cached
    found = _load(core, digest)
    if found is None:
        raise Unauthorized(INVALID)
    if len(core.chain_key_cache) >= _CACHE_MAX:
        core.chain_key_cache.clear()
    core.chain_key_cache[digest] = (now + CACHE_SECONDS, found)
    return found


def _load(core: Core, digest: str) -> Reach | None:
    with core.db.read() as session:
        row = session.get(ChainletCredential, digest)
        if row is None:
            return None
        deployment = session.get(ChainDeployment, row.deployment_id)
        caller = session.get(Chainlet, row.chainlet_id)
        if deployment is None or caller is None:
            return None
        declared = set(caller.dependencies or ())
        callees = {
            c.id: Callee(
                chainlet_id=c.id,
                name=c.name,
                deployment_id=deployment.id,
                deployment_status=deployment.status,
                predict_concurrency=int((c.compute or {}).get("predict_concurrency") or 1),
            )
            for c in session.scalars(
                select(Chainlet).where(Chainlet.chain_deployment_id == deployment.id)
            )
            if c.name in declared and c.id != caller.id
        }
        return Reach(deployment.id, caller.id, callees)


def cached_callee(core: Core, token: str, chainlet_id: str) -> Callee | None:
    """`callee` without the store: None when the token is not in the cache (or not live)."""
    hit = core.chain_key_cache.get(token_hash(token)) if token else None
    if hit is None or hit[0] < time.monotonic():
        return None
    return _allowed(hit[1], chainlet_id)


def callee(core: Core, token: str, chainlet_id: str) -> Callee:
    """`chainlet_id` when the token may call it. A live token aimed elsewhere is Forbidden, with
    a message that names nothing of the target (it may be another workspace's)."""
    return _allowed(reach(core, token), chainlet_id)


def _allowed(found: Reach, chainlet_id: str) -> Callee:
    target = found.callees.get(chainlet_id)
    if target is None:
        raise Forbidden("this chain key may call only its chainlet's declared dependencies")
    return target
