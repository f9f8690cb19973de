"""The reconciler's side of the store: what should run, and recording what was observed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from typing import Any, NamedTuple

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from chainyard.domain import promotion, replica_log
from chainyard.domain.statuses import TERMINAL_FAILURES, DeploymentStatus, Event
from chainyard.services import promotions
from chainyard.services.context import Core, system_actor
from chainyard.services.lifecycle import apply_event, refresh_status
from chainyard.services.pacing import Pacer, unpaced
from chainyard.store.chains import MOVING_STATUSES, Chain, ChainDeployment, Chainlet, unsettled
from chainyard.store.environments import Environment
from chainyard.store.logs import ChainletLog
from chainyard.store.patches import DeploymentPatch
from chainyard.store.workspaces import Workspace


@dataclasses.dataclass(frozen=True)
class ChainletWork:
    """A detached snapshot of one chainlet the reconciler must look at this tick."""

    chainlet_id: str
    name: str
    deployment_id: str
    chain_id: str
    status: DeploymentStatus
    desired_replicas: int
    ready_replicas: int
    desired_state: str
    instance_type_id: str
    compute: dict[str, Any]
    artifact_digest: str | None
    is_entrypoint: bool
    dependencies: tuple[str, ...]
    pip_requirements: tuple[str, ...]
    workspace_id: str = ""
    source_file: str | None = None
    environment: str | None = None
    secret_keys: tuple[str, ...] = ()
    # The deployment's entrypoint chainlet: the class the replica host imports the chain file by
    # (a file with several chainlets and no `mark_entrypoint` names it on `chainyard push`).
    entrypoint_name: str | None = None
    # Image settings, assets and options (services/chainlet_image.py).
    image: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Chainlet name -> id of the chainlets in the same deployment (dependencies' routes).
    sibling_ids: dict[str, str] = dataclasses.field(default_factory=dict)
    # The patch revision whose code the chainlet runs (docs/development.md), whether its
    # deployment is a development one, and the kind of the patch being applied to it, if one
    # is: "code" or "requirements" (a rebuild first).
    code_revision: int = 0
    development: bool = False
    patch_kind: str | None = None
    # When that patch was made: one that cannot finish is given up (reconciler/patching.py).
    patch_created_at: dt.datetime | None = None


@dataclasses.dataclass
class ChainletUpdate:
    """What one tick learned about a chainlet: events to apply and its ready count."""

    chainlet_id: str
    expected_status: DeploymentStatus
    events: list[tuple[Event, str | None]] = dataclasses.field(default_factory=list)
    ready_replicas: int | None = None
    log_lines: list[tuple[str, str | None, str | None]] = dataclasses.field(default_factory=list)


# Ids per statement when loading or writing by id: well under PostgreSQL's bind-parameter limit,
# and small enough that one chunk never holds the GIL or SQLite's write lock for long.
_CHUNK = 500


class ChainletGlance(NamedTuple):
    """The few plain columns that tell whether a running chainlet needs a closer look. A named
    tuple: a full scan makes one per running chainlet, and a tuple is quicker to build than a
    frozen dataclass."""

    chainlet_id: str
    status: DeploymentStatus
    desired_replicas: int
    ready_replicas: int
    desired_state: str


def _watched(settled_too: bool) -> Any:
    if settled_too:
        return or_(
            Chainlet.status.in_(MOVING_STATUSES),
            Chainlet.desired_replicas > 0,
            Chainlet.ready_replicas > 0,
        )
    return unsettled()


# Status strings to members: a dict lookup, where calling the enum costs ten times as much (20,000
# rows a full scan).
_STATUS = {status.value: status for status in DeploymentStatus}


def _glance_statement(settled_too: bool) -> Any:
    return (
        select(
            Chainlet.id,
            Chainlet.status,
            Chainlet.desired_replicas,
            Chainlet.ready_replicas,
            ChainDeployment.desired_state,
        )
        .join(ChainDeployment, ChainDeployment.id == Chainlet.chain_deployment_id)
        .where(_watched(settled_too))
    )


_GLANCE = {settled_too: _glance_statement(settled_too) for settled_too in (True, False)}


def glance(
    core: Core, *, settled_too: bool = True, pacer: Pacer | None = None
) -> list[ChainletGlance]:
    """Every chainlet the reconciler watches, as plain columns (no JSON, no ORM objects): a full
    scan compares these with what runs and loads full rows only where the two differ."""
    pacer = pacer or unpaced()
    found: list[ChainletGlance] = []
    with core.db.read() as session:
        # Through the connection: plain rows, without the ORM's result processing.
        result = session.connection().execute(_GLANCE[settled_too])
        for rows in pacer.rows(result):
            found.extend(ChainletGlance(r[0], _STATUS[r[1]], r[2], r[3], r[4]) for r in rows)
    return found


def load_work(
    core: Core,
    *,
    settled_too: bool = True,
    also: set[str] | None = None,
    pacer: Pacer | None = None,
) -> list[ChainletWork]:
    """Chainlets the reconciler must look at. Without `settled_too`, only those whose stored state
    is not at rest (status moving, or desired != ready) plus the ids in `also`: the cheap scan
    between full ones, for a store with many steady deployments."""
    ids = {g.chainlet_id for g in glance(core, settled_too=settled_too, pacer=pacer)}
    return load_chainlets(core, ids | (also or set()) | patched(core), pacer=pacer)


def patched(core: Core) -> set[str]:
    """Chainlets a patch is being applied to: at rest in the store (ACTIVE, as many ready as
    wanted) while their replicas are replaced."""
    with core.db.read() as session:
        return set(
            session.scalars(
                select(Chainlet.id)
                .join(
                    DeploymentPatch,
                    (DeploymentPatch.chain_deployment_id == Chainlet.chain_deployment_id)
                    & (DeploymentPatch.revision == Chainlet.code_revision),
                )
                .where(DeploymentPatch.status == "APPLYING")
            )
        )


def load_chainlets(core: Core, ids: set[str], *, pacer: Pacer | None = None) -> list[ChainletWork]:
    """Full snapshots of these chainlets (those that no longer exist are left out), loaded in
    chunks of plain columns."""
    work: list[ChainletWork] = []
    for chunk in (pacer or unpaced()).over(sorted(ids), _CHUNK):
        with core.db.read() as session:
            work.extend(_load_chunk(session, list(chunk)))
    return work


def _load_chunk(session: Any, ids: list[str]) -> list[ChainletWork]:
    rows = session.execute(
        select(
            Chainlet.id,
            Chainlet.name,
            Chainlet.status,
            Chainlet.desired_replicas,
            Chainlet.ready_replicas,
            Chainlet.instance_type_id,
            Chainlet.compute,
            Chainlet.is_entrypoint,
            Chainlet.dependencies,
            Chainlet.pip_requirements,
            Chainlet.secret_keys,
            ChainDeployment.id,
            ChainDeployment.chain_id,
            ChainDeployment.desired_state,
            ChainDeployment.artifact_digest,
            ChainDeployment.source_file,
            ChainDeployment.environment,
            Chain.workspace_id,
            ChainDeployment.entrypoint,
            Chainlet.image,
            Chainlet.artifact_digest,
            Chainlet.code_revision,
            ChainDeployment.is_development,
        )
        .join(ChainDeployment, ChainDeployment.id == Chainlet.chain_deployment_id)
        .join(Chain, Chain.id == ChainDeployment.chain_id)
        .where(Chainlet.id.in_(ids))
    ).all()
    deployment_ids = sorted({r[11] for r in rows})
    if not deployment_ids:
        return []
    # A deployment being promoted already belongs to its environment: its chainlets learn the
    # name (DeploymentContext.environment) when their replicas start.
    env_of: dict[str, str] = {}
    for name, current, candidate in session.execute(
        select(
            Environment.name,
            Environment.current_deployment_id,
            Environment.candidate_deployment_id,
        ).where(
            or_(
                Environment.current_deployment_id.in_(deployment_ids),
                Environment.candidate_deployment_id.in_(deployment_ids),
            )
        )
    ):
        for deployment_id in (current, candidate):
            if deployment_id is not None:
                env_of[deployment_id] = name
    siblings: dict[str, dict[str, str]] = {}
    for deployment_id, name, chainlet_id in session.execute(
        select(Chainlet.chain_deployment_id, Chainlet.name, Chainlet.id).where(
            Chainlet.chain_deployment_id.in_(deployment_ids)
        )
    ):
        siblings.setdefault(deployment_id, {})[name] = chainlet_id
    applying: dict[tuple[str, int], tuple[str, dt.datetime]] = {
        (deployment_id, revision): (kind, created_at)
        for deployment_id, revision, kind, created_at in session.execute(
            select(
                DeploymentPatch.chain_deployment_id,
                DeploymentPatch.revision,
                DeploymentPatch.kind,
                DeploymentPatch.created_at,
            ).where(
                DeploymentPatch.chain_deployment_id.in_(deployment_ids),
                DeploymentPatch.status == "APPLYING",
            )
        )
    }
    return [
        ChainletWork(
            chainlet_id=r[0],
            name=r[1],
            deployment_id=r[11],
            chain_id=r[12],
            status=DeploymentStatus(r[2]),
            desired_replicas=r[3],
            ready_replicas=r[4],
            desired_state=r[13],
            instance_type_id=r[5],
            compute=dict(r[6] or {}),
            artifact_digest=r[20] or r[14],
            is_entrypoint=bool(r[7]),
            dependencies=tuple(r[8] or ()),
            pip_requirements=tuple(r[9] or ()),
            workspace_id=r[17],
            source_file=r[15],
            environment=env_of.get(r[11], r[16]),
            secret_keys=tuple(r[10] or ()),
            entrypoint_name=r[18],
            image=dict(r[19] or {}),
            sibling_ids=siblings.get(r[11], {}),
            code_revision=int(r[21] or 0),
            development=bool(r[22]),
            patch_kind=(patch := applying.get((r[11], int(r[21] or 0)), (None, None)))[0],
            patch_created_at=patch[1],
        )
        for r in rows
    ]


_LEVEL = re.compile(r"\b(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b")


def _level_of(line: str) -> str | None:
    if line.startswith("Traceback (most recent call last)"):
        return "ERROR"
    match = _LEVEL.search(line[:60])
    if match is None:
        return None
    return {"WARN": "WARNING", "CRITICAL": "ERROR", "FATAL": "ERROR"}.get(
        match.group(1), match.group(1)
    )


def existing_chainlets(core: Core, ids: set[str]) -> set[str]:
    """Which of these chainlet ids still exist (replicas of the others are orphans)."""
    return _ids_among(core, ids, select(Chainlet.id))


def still_serving(core: Core, ids: set[str]) -> set[str]:
    """Which of these chainlets exist in a deployment that is still wanted (desired ACTIVE, at
    zero replicas or not): what the runtime keeps for that deployment between replicas (the
    local runtime's host process) must stay, so that waking it only starts a replica."""
    return _ids_among(
        core,
        ids,
        select(Chainlet.id)
        .join(ChainDeployment, ChainDeployment.id == Chainlet.chain_deployment_id)
        .where(ChainDeployment.desired_state == "ACTIVE"),
    )


def _ids_among(core: Core, ids: set[str], query: Any) -> set[str]:
    """The chainlet ids `query` (a select of Chainlet.id) finds among `ids`, asked in chunks."""
    if not ids:
        return set()
    ordered = sorted(ids)
    found: set[str] = set()
    with core.db.read() as session:
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            found.update(session.scalars(query.where(Chainlet.id.in_(chunk))))
    return found


def record_replica_logs(core: Core, lines: list[tuple[str, str, str]]) -> None:
    """Stores replica output lines: (chainlet id, replica id, text)."""
    if not lines:
        return
    start = time.time_ns()
    with core.db.write() as session:
        known = set(
            session.scalars(select(Chainlet.id).where(Chainlet.id.in_({c for c, _, _ in lines})))
        )
        for i, (chainlet_id, replica_id, text) in enumerate(lines):
            if chainlet_id not in known:
                continue  # the chainlet was deleted meanwhile
            # A record of Python's logging (domain/replica_log.py) brings its level and request
            # id; plain output gets the level its text suggests.
            record = replica_log.parse(text)
            if record is None:
                record = replica_log.ReplicaLine(message=text, level=_level_of(text))
            session.add(
                ChainletLog(
                    chainlet_id=chainlet_id,
                    timestamp_ns=start + i,
                    message=record.message[: replica_log.MAX_CHARS],
                    level=record.level,
                    replica=replica_id,
                    request_id=record.request_id,
                    component="replica",
                )
            )


def apply_updates(core: Core, updates: list[ChainletUpdate], *, pacer: Pacer | None = None) -> None:
    """Records a tick's findings and settles the promotions they decide. One transaction per
    chunk: a restart reports thousands of ready counts at once, and API writers must not wait
    behind one long write (each chainlet's update stands on its own)."""
    for chunk in (pacer or unpaced()).over(updates, _CHUNK):
        with core.db.write() as session:
            _apply_chunk(session, list(chunk))


def _apply_chunk(session: Any, updates: list[ChainletUpdate]) -> None:
    chainlets = {
        c.id: c
        for c in session.scalars(
            select(Chainlet)
            .where(Chainlet.id.in_([u.chainlet_id for u in updates]))
            # With their deployments' other chainlets, which each deployment's status is
            # derived from: one query for the chunk rather than one per deployment.
            .options(selectinload(Chainlet.deployment).selectinload(ChainDeployment.chainlets))
        )
    }
    touched: dict[str, ChainDeployment] = {}
    for update in updates:
        chainlet = chainlets.get(update.chainlet_id)
        if chainlet is None:
            continue  # deleted meanwhile; its replicas are stopped as orphans
        now_ns = time.time_ns()
        for i, (line, level, component) in enumerate(update.log_lines):
            session.add(
                ChainletLog(
                    chainlet_id=chainlet.id,
                    timestamp_ns=now_ns + i,
                    message=line,
                    level=level,
                    component=component,
                )
            )
        if chainlet.status != update.expected_status.value:
            continue  # changed by the API since we looked; the next tick decides again
        for event, reason in update.events:
            apply_event(chainlet, event, reason)
        if update.ready_replicas is not None:
            chainlet.ready_replicas = update.ready_replicas
        touched[chainlet.chain_deployment_id] = chainlet.deployment
    settling: list[tuple[ChainDeployment, DeploymentStatus]] = []
    for deployment in touched.values():
        before, after = refresh_status(deployment)
        if before != after:
            if after in TERMINAL_FAILURES:
                _stop_failed(deployment)
            if after == DeploymentStatus.ACTIVE or after in TERMINAL_FAILURES:
                settling.append((deployment, after))
    _settle_promotions(session, settling)


def _stop_failed(deployment: ChainDeployment) -> None:
    """A deployment that failed for good serves nothing: the replicas and builds of its other
    chainlets stop too (the reconciler's path for a deployment that is not wanted)."""
    deployment.desired_state = "INACTIVE"
    for chainlet in deployment.chainlets:
        chainlet.desired_replicas = 0


def _settle_promotions(
    session: Any, settling: list[tuple[ChainDeployment, DeploymentStatus]]
) -> None:
    """Finishes (ACTIVE) or fails the promotions of deployments that just settled. What that
    needs is read for the whole chunk up front, one query per kind of row, rather than a few
    queries per deployment: a tick settling hundreds of promotions otherwise held the server's
    interpreter for tenths of a second (bench/control_plane.py, loops running)."""
    if not settling:
        return
    ids = [deployment.id for deployment, _ in settling]
    # Locked in id order, so that two writers locking several environments never wait on each
    # other in a cycle.
    candidates: dict[str, list[Environment]] = {}
    for env in session.scalars(
        select(Environment)
        .where(Environment.candidate_deployment_id.in_(ids))
        .order_by(Environment.id)
        .with_for_update()
    ):
        candidates.setdefault(str(env.candidate_deployment_id), []).append(env)
    if not candidates:
        return
    settling = [(d, status) for d, status in settling if d.id in candidates]
    chains = {
        c.id: c
        for c in session.scalars(
            select(Chain).where(Chain.id.in_({d.chain_id for d, _ in settling}))
        )
    }
    workspaces = {
        w.id: w
        for w in session.scalars(
            select(Workspace).where(Workspace.id.in_({c.workspace_id for c in chains.values()}))
        )
    }
    envs = [env for group in candidates.values() for env in group]
    # Into the session, where promotions.finish finds them: each environment's chainlet
    # settings, and the deployments it serves now with their chainlets (for the clean-up).
    session.scalars(
        select(Environment)
        .where(Environment.id.in_([env.id for env in envs]))
        .options(selectinload(Environment.chainlet_settings))
    ).all()
    serving = {env.current_deployment_id for env in envs if env.current_deployment_id}
    # Held until the loop below is done: the session's identity map keeps unchanged objects only
    # while something else refers to them, and promotions.finish would read each one again.
    serving_rows = (
        session.scalars(
            select(ChainDeployment)
            .where(ChainDeployment.id.in_(serving))
            .options(selectinload(ChainDeployment.chainlets))
        ).all()
        if serving
        else []
    )
    for deployment, status in settling:
        chain = chains[deployment.chain_id]
        workspace = workspaces[chain.workspace_id]
        actor = system_actor(workspace.id, workspace.name)
        for env in candidates[deployment.id]:
            # A gradual promotion waits on ACTIVE: services/rollouts.py decides when it is done.
            step = promotion.settled(promotions.state_of(env), status)
            if step == promotion.Step.FINISH:
                promotions.finish(session, actor, chain, env, deployment)
            elif step == promotion.Step.FAIL:
                promotions.fail(session, env, deployment)
    del serving_rows
