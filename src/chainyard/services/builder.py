"""Creating chain deployments: from a manifest (deploy) or as a copy (instance-type update)."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import BindParameter, ScalarSelect, func, select
from sqlalchemy.orm import Session

from chainyard.domain.autoscaling import DEVELOPMENT, AutoscalingSettings
from chainyard.domain.ids import new_id
from chainyard.domain.statuses import DeploymentStatus
from chainyard.services import audit
from chainyard.services.context import Actor
from chainyard.store.chains import Chain, ChainDeployment, Chainlet
from chainyard.store.environments import ChainletEnvironmentSettings, Environment


@dataclasses.dataclass(frozen=True)
class ChainletSpec:
    name: str
    is_entrypoint: bool
    dependencies: list[str]
    compute: dict[str, Any]
    pip_requirements: list[str]
    secret_keys: list[str]
    instance_type_id: str
    # Image settings, assets and options that change how it builds and runs
    # (services/chainlet_image.py).
    image: dict[str, Any] = dataclasses.field(default_factory=dict)


def initial_replicas(settings: AutoscalingSettings) -> int:
    # A new deployment proves itself with at least one ready replica, even when its minimum is
    # zero; idle scale-down takes it to zero later.
    return max(1, settings.min_replica)


def create_deployment(
    session: Session,
    chain: Chain,
    *,
    name: str | None,
    entrypoint: str,
    specs: list[ChainletSpec],
    artifact_digest: str | None,
    source_file: str | None = None,
    source_deployment_id: str | None,
    environment: Environment | None,
    add: bool = True,
    development: bool = False,
) -> ChainDeployment:
    """A BUILDING deployment, added to the session (with `add=False`, not: the caller writes its
    rows itself, through `store.batch`). With `environment`, its chainlet settings win over the
    specs' instance types and give the autoscaling settings. Settings it lacks are not created
    here but when the deployment is promoted, so that a candidate that fails leaves none
    behind. With `development`, the chain's development deployment (docs/development.md): in no
    environment, with the development autoscaling settings."""
    assert not (development and environment is not None)
    settings = {s.chainlet_name: s for s in environment.chainlet_settings} if environment else {}
    if name is None:
        count = session.scalar(select(deployment_count(chain.id)))
        name = deployment_name(count or 0)
    deployment = ChainDeployment(
        id=new_id(),
        chain_id=chain.id,
        name=name,
        status=DeploymentStatus.BUILDING.value,
        desired_state="ACTIVE",
        entrypoint=entrypoint,
        artifact_digest=artifact_digest,
        source_file=source_file,
        source_deployment_id=source_deployment_id,
        # Set here, not left to the column default: the answer is built before the row is
        # written back (store/batch.py).
        is_development=development,
    )
    for position, spec in enumerate(specs):
        env_settings = settings.get(spec.name)
        autoscaling = (
            DEVELOPMENT
            if development
            else AutoscalingSettings.from_dict(env_settings.autoscaling if env_settings else None)
        )
        deployment.chainlets.append(
            Chainlet(
                id=new_id(),
                chain_deployment_id=deployment.id,
                name=spec.name,
                position=position,
                is_entrypoint=spec.is_entrypoint,
                dependencies=list(spec.dependencies),
                compute=dict(spec.compute),
                pip_requirements=list(spec.pip_requirements),
                secret_keys=list(spec.secret_keys),
                image=dict(spec.image),
                instance_type_id=env_settings.instance_type_id
                if env_settings
                else spec.instance_type_id,
                autoscaling=autoscaling.to_dict(),
                status=DeploymentStatus.BUILDING.value,
                desired_replicas=initial_replicas(autoscaling),
                ready_replicas=0,
            )
        )
    # Written with the transaction (or an earlier query's autoflush): one flush for all of a
    # request's rows costs less than one per step.
    if add:
        session.add(deployment)
    return deployment


def deployment_count(chain_id: str | BindParameter[str]) -> ScalarSelect[int]:
    """How many deployments a chain has, as a subquery, so that a query the caller makes anyway
    can carry it (the count names the next deployment)."""
    return (
        select(func.count())
        .select_from(ChainDeployment)
        .where(ChainDeployment.chain_id == chain_id)
        .scalar_subquery()
    )


def deployment_name(existing: int) -> str:
    return f"deployment-{existing + 1}"


def specs_of(deployment: ChainDeployment) -> list[ChainletSpec]:
    return [
        ChainletSpec(
            name=c.name,
            is_entrypoint=c.is_entrypoint,
            dependencies=list(c.dependencies),
            compute=dict(c.compute),
            pip_requirements=list(c.pip_requirements),
            secret_keys=list(c.secret_keys),
            instance_type_id=c.instance_type_id,
            image=dict(c.image or {}),
        )
        for c in deployment.chainlets
    ]


def ensure_environment_settings(
    environment: Environment, specs: list[ChainletSpec]
) -> dict[str, ChainletEnvironmentSettings]:
    """The environment's chainlet settings for `specs`, creating those it lacks from the specs."""
    existing = {s.chainlet_name: s for s in environment.chainlet_settings}
    for spec in specs:
        if spec.name not in existing:
            row = ChainletEnvironmentSettings(
                id=new_id(),
                chainlet_name=spec.name,
                instance_type_id=spec.instance_type_id,
                autoscaling=AutoscalingSettings().to_dict(),
            )
            environment.chainlet_settings.append(row)
            existing[spec.name] = row
    return existing


def record_deployed(
    session: Session,
    actor: Actor,
    chain: Chain,
    deployment: ChainDeployment,
    environment_name: str | None,
) -> None:
    audit.record(
        session,
        actor,
        "CHAIN_DEPLOYED",
        {
            "chain_id": chain.id,
            "chain_name": chain.name,
            "chain_deployment_id": deployment.id,
            "chain_deployment_name": deployment.name,
            "is_primary": environment_name == "production",
            "publish": environment_name is not None,
        },
        chain_id=chain.id,
        environment_name=environment_name,
        chain_deployment_id=deployment.id,
    )


def copy_for_environment(
    session: Session,
    actor: Actor,
    chain: Chain,
    source: ChainDeployment,
    environment: Environment,
    *,
    name: str | None = None,
    add: bool = True,
) -> ChainDeployment:
    """A new deployment of the same code as `source`, with the environment's chainlet settings
    (the instance-type update and promotions that must redeploy)."""
    copy = create_deployment(
        session,
        chain,
        name=name,
        entrypoint=source.entrypoint,
        specs=specs_of(source),
        artifact_digest=source.artifact_digest,
        source_file=source.source_file,
        source_deployment_id=source.id,
        environment=environment,
        add=add,
    )
    record_deployed(session, actor, chain, copy, environment.name)
    return copy
