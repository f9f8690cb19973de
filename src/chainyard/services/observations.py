"""The reconciler's side of the store: what should run, and recording what was observed."""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

from sqlalchemy import or_, select

from chainyard.domain.statuses import TERMINAL_FAILURES, DeploymentStatus, Event
from chainyard.services import promotions
from chainyard.services.context import Core, system_actor
from chainyard.services.lifecycle import apply_event, refresh_status
from chainyard.store.chains import Chain, ChainDeployment, Chainlet
from chainyard.store.environments import Environment
from chainyard.store.logs import ChainletLog
from chainyard.store.workspaces import Workspace

# Statuses in which the reconciler has work even when no replica is wanted.
_MOVING = frozenset(
    {
        DeploymentStatus.BUILDING,
        DeploymentStatus.DEPLOYING,
        DeploymentStatus.DEACTIVATING,
        DeploymentStatus.WAKING_UP,
        DeploymentStatus.UPDATING,
        DeploymentStatus.UNHEALTHY,
        DeploymentStatus.LOADING_MODEL,
    }
)


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
    # Chainlet name -> id of the chainlets in the same deployment (dependencies' routes).
    sibling_ids: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ChainletUpdate:
    """What one tick learned about a chainlet: events to apply and its ready count."""

    chainlet_id: str
    expected_status: DeploymentStatus
    events: list[tuple[Event, str | None]] = dataclasses.field(default_factory=list)
    ready_replicas: int | None = None
    log_lines: list[tuple[str, str | None, str | None]] = dataclasses.field(default_factory=list)


def load_work(
    core: Core, *, settled_too: bool = True, also: set[str] | None = None
) -> list[ChainletWork]:
    """Chainlets the reconciler must look at. Without `settled_too`, only those whose stored state
    is not at rest (status moving, or desired != ready) plus the ids in `also`: the cheap scan
    between full ones, for a store with many steady deployments."""
    if settled_too:
        condition = or_(
            Chainlet.status.in_([s.value for s in _MOVING]),
            Chainlet.desired_replicas > 0,
            Chainlet.ready_replicas > 0,
        )
    else:
        condition = or_(
            Chainlet.status.in_([s.value for s in _MOVING]),
            Chainlet.desired_replicas != Chainlet.ready_replicas,
            Chainlet.id.in_(sorted(also or ())),
        )
    with core.db.read() as session:
        rows = session.execute(
            select(Chainlet, ChainDeployment, Chain.workspace_id)
            .join(ChainDeployment, ChainDeployment.id == Chainlet.chain_deployment_id)
            .join(Chain, Chain.id == ChainDeployment.chain_id)
            .where(condition)
        ).all()
        # A deployment being promoted already belongs to its environment: its chainlets learn the
        # name (DeploymentContext.environment) when their replicas start.
        deployment_ids = {d.id for _, d, _ in rows}
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
                if deployment_id in deployment_ids:
                    env_of[deployment_id] = name
        return [
            ChainletWork(
                chainlet_id=c.id,
                name=c.name,
                deployment_id=d.id,
                chain_id=d.chain_id,
                status=DeploymentStatus(c.status),
                desired_replicas=c.desired_replicas,
                ready_replicas=c.ready_replicas,
                desired_state=d.desired_state,
                instance_type_id=c.instance_type_id,
                compute=dict(c.compute),
                artifact_digest=d.artifact_digest,
                is_entrypoint=c.is_entrypoint,
                dependencies=tuple(c.dependencies),
                pip_requirements=tuple(c.pip_requirements),
                workspace_id=workspace_id,
                source_file=d.source_file,
                environment=env_of.get(d.id, d.environment),
                secret_keys=tuple(c.secret_keys),
                sibling_ids={s.name: s.id for s in d.chainlets},
            )
            for c, d, workspace_id in rows
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
    if not ids:
        return set()
    with core.db.read() as session:
        return set(session.scalars(select(Chainlet.id).where(Chainlet.id.in_(sorted(ids)))))


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
            session.add(
                ChainletLog(
                    chainlet_id=chainlet_id,
                    timestamp_ns=start + i,
                    message=text[:10_000],
                    level=_level_of(text),
                    replica=replica_id,
                    component="replica",
                )
            )


def apply_updates(core: Core, updates: list[ChainletUpdate]) -> None:
    """Records a tick's findings in one transaction and settles the promotions they decide."""
    if not updates:
        return
    with core.db.write() as session:
        touched: dict[str, ChainDeployment] = {}
        for update in updates:
            chainlet = session.get(Chainlet, update.chainlet_id)
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
        for deployment in touched.values():
            before, after = refresh_status(deployment)
            if before != after:
                if after in TERMINAL_FAILURES:
                    _stop_failed(deployment)
                _settle_promotions(session, deployment, after)


def _stop_failed(deployment: ChainDeployment) -> None:
    """A deployment that failed for good serves nothing: the replicas and builds of its other
    chainlets stop too (the reconciler's path for a deployment that is not wanted)."""
    deployment.desired_state = "INACTIVE"
    for chainlet in deployment.chainlets:
        chainlet.desired_replicas = 0


def _settle_promotions(session: Any, deployment: ChainDeployment, status: DeploymentStatus) -> None:
    if status != DeploymentStatus.ACTIVE and status not in TERMINAL_FAILURES:
        return
    chain = session.get(Chain, deployment.chain_id)
    workspace = session.get(Workspace, chain.workspace_id)
    actor = system_actor(workspace.id, workspace.name)
    for env in promotions.environments_serving(session, deployment.id):
        if env.candidate_deployment_id != deployment.id:
            continue
        if status == DeploymentStatus.ACTIVE:
            promotions.finish(session, actor, chain, env, deployment)
        else:
            promotions.fail(env, deployment)
