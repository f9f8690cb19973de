"""Creating a chain deployment from a manifest: Baseten does this outside REST, we add
POST /v1/chains/deploy."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chainyard.domain.errors import Invalid, NotFound
from chainyard.domain.graph import check_chain_graph
from chainyard.domain.ids import new_id
from chainyard.domain.instance_types import NoFittingInstanceType
from chainyard.domain.resources import parse_memory_mib, parse_millicpu
from chainyard.schemas import DEVELOPMENT_NAME, ChainletManifest, DeployManifest, DeployResponse
from chainyard.services import (
    chainlet_image,
    deployments,
    instance_types,
    lookups,
    promotions,
    secrets,
    views,
)
from chainyard.services.builder import ChainletSpec, create_deployment, record_deployed
from chainyard.services.context import Actor, Core
from chainyard.services.environments import add_environment, new_environment
from chainyard.store.chains import Chain, ChainDeployment
from chainyard.store.environments import Environment


def _entrypoints(manifest: DeployManifest) -> list[str]:
    flagged = [c.name for c in manifest.chainlets if c.is_entrypoint]
    if manifest.entrypoint is None:
        return flagged
    return sorted({manifest.entrypoint, *flagged})


def _instance_type(core: Core, chainlet: ChainletManifest) -> str:
    if chainlet.instance_type_id is not None:
        try:
            return instance_types.require(core.catalogue, chainlet.instance_type_id).id
        except Invalid as exc:
            # From Compute.instance_type, or the manifest's own field.
            raise Invalid(
                f"chainlet '{chainlet.name}': Compute.instance_type: {exc.message}", code=exc.code
            ) from exc
    compute = chainlet.compute
    try:
        millicpu = parse_millicpu(compute.cpu_count)
        memory = parse_memory_mib(compute.memory)
        gpu_count = compute.gpu_count or (1 if compute.gpu else 0)
        return core.catalogue.smallest_fit(millicpu, memory, compute.gpu, gpu_count).id
    except NoFittingInstanceType as exc:
        raise Invalid(
            f"chainlet '{chainlet.name}': {exc}", code="NO_FITTING_INSTANCE_TYPE"
        ) from exc
    except ValueError as exc:
        raise Invalid(f"chainlet '{chainlet.name}': {exc}", code="INVALID_COMPUTE") from exc


def plan(core: Core, manifest: DeployManifest) -> tuple[str, list[ChainletSpec], list[str]]:
    """Checks the manifest, resolves instance types and image settings; touches no rows. Also
    the warnings for the push output (settings honoured with a difference)."""
    entrypoints = _entrypoints(manifest)
    order = check_chain_graph(
        {c.name: c.dependencies for c in manifest.chainlets},
        entrypoints,
        [c.name for c in manifest.chainlets],
    )
    del order  # the check is what matters; rows keep the manifest's order
    entry = entrypoints[0]
    images: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for c in manifest.chainlets:
        images[c.name], notes = chainlet_image.check(c, core.interpreters)
        warnings += notes
    specs = [
        ChainletSpec(
            name=c.name,
            is_entrypoint=c.name == entry,
            dependencies=list(c.dependencies),
            compute=c.compute.model_dump(mode="json"),
            pip_requirements=list(c.pip_requirements),
            secret_keys=list(c.secret_keys),
            instance_type_id=_instance_type(core, c),
            image=images[c.name],
        )
        for c in manifest.chainlets
    ]
    return entry, specs, warnings


def deploy(
    core: Core, actor: Actor, manifest: DeployManifest, artifact_digest: str | None = None
) -> DeployResponse:
    if artifact_digest is not None and manifest.source_file is None:
        raise Invalid(
            "a deploy with a source archive needs the manifest's source_file",
            code="INVALID_MANIFEST",
        )
    if artifact_digest is None and manifest.source_file is not None:
        raise Invalid("source_file was given but no source archive", code="INVALID_MANIFEST")
    entry, specs, warnings = plan(core, manifest)
    # Two first pushes of one chain name may race to create it; the unique constraint decides and
    # the loser retries, finding the winner's chain (Baseten's deploy_chain_atomic does the same).
    for attempt in range(3):
        try:
            return _deploy_once(core, actor, manifest, entry, specs, artifact_digest, warnings)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _deploy_once(
    core: Core,
    actor: Actor,
    manifest: DeployManifest,
    entry: str,
    specs: list[ChainletSpec],
    artifact_digest: str | None,
    image_warnings: list[str],
) -> DeployResponse:
    with core.db.write() as session:
        if manifest.chain_id is not None:
            chain = lookups.chain(session, actor, manifest.chain_id)
        else:
            found = session.scalar(
                select(Chain).where(
                    Chain.workspace_id == actor.workspace_id, Chain.name == manifest.chain_name
                )
            )
            if found is None:
                assert manifest.chain_name is not None
                found = Chain(
                    id=new_id(), workspace_id=actor.workspace_id, name=manifest.chain_name
                )
                session.add(found)
                session.flush()
            chain = found

        env: Environment | None = None
        if manifest.environment is not None:
            env = session.scalar(
                select(Environment)
                .where(Environment.chain_id == chain.id, Environment.name == manifest.environment)
                .with_for_update()
            )
            if env is None:
                if manifest.environment != "production":
                    raise NotFound(
                        f"environment '{manifest.environment}' not found in chain '{chain.id}'; "
                        "create it first (POST /v1/chains/{chain_id}/environments)",
                        code="ENVIRONMENT_NOT_FOUND",
                    )
                env = new_environment(chain, "production")
                add_environment(session, actor, chain, env)
            promotions.require_no_promotion(env)

        replaced = _replace_development(session, actor, chain) if manifest.development else 0
        deployment = create_deployment(
            session,
            chain,
            name=DEVELOPMENT_NAME if manifest.development else manifest.deployment_name,
            entrypoint=entry,
            specs=specs,
            artifact_digest=artifact_digest,
            source_file=manifest.source_file,
            source_deployment_id=None,
            environment=env,
            development=manifest.development,
        )
        record_deployed(session, actor, chain, deployment, manifest.environment)
        if env is not None:
            promotions.begin(session, actor, chain, env, deployment)
        session.flush()
        warnings = image_warnings + [
            secrets.missing_note(spec.name, missing)
            for spec in specs
            if (missing := secrets.missing_in(session, actor.workspace_id, spec.secret_keys))
        ]
        response = DeployResponse(
            chain_id=chain.id,
            chain_deployment=views.deployment_v1(deployment, core.catalogue),
            warnings=warnings,
        )
    if replaced:
        core.chainlets_deleted()
    core.wake_reconciler()
    return response


def _replace_development(session: Session, actor: Actor, chain: Chain) -> int:
    """Deletes the chain's development deployment, as DELETE does, before a development push
    makes the new one: "each time you make a development deployment, it overwrites the existing
    development deployment" (Baseten). Until the new one is ready, /development/run_remote holds
    its requests (it resolves to the new deployment, which wakes). Answers how many went.

    The chain row is locked first: two development pushes of one chain then take turns, and the
    second finds (and deletes) the first one's deployment, so one is left (PostgreSQL; on SQLite
    the write transaction already holds the database's write lock). FOR NO KEY UPDATE: a
    published push meanwhile (whose new row's foreign key takes a KEY SHARE lock on the chain)
    does not wait for it."""
    session.execute(select(Chain.id).where(Chain.id == chain.id).with_for_update(key_share=True))
    previous = session.scalars(
        select(ChainDeployment).where(
            ChainDeployment.chain_id == chain.id, ChainDeployment.is_development.is_(True)
        )
    ).all()
    for old in previous:
        deployments.remove(session, actor, chain, old)
    return len(previous)
