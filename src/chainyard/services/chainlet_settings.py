"""Per-chainlet environment settings: the instance-type update and the autoscaling PATCH."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, joinedload

from chainyard.domain.autoscaling import AutoscalingSettings, apply_update
from chainyard.domain.errors import Invalid, NotFound
from chainyard.schemas import (
    ChainletEnvironmentAutoscalingSettingsUpdateV1,
    ChainletEnvironmentInstanceTypeUpdateV1,
    UpdateAutoscalingSettingsResponseV1,
    UpdateAutoscalingSettingsStatusV1,
    UpdateChainletEnvironmentInstanceTypeResponseV1,
)
from chainyard.services import audit, instance_types, lookups, promotions, views
from chainyard.services.builder import copy_for_environment, deployment_count, deployment_name
from chainyard.services.context import Actor, Core
from chainyard.store.audit_logs import AuditLog
from chainyard.store.batch import write_together
from chainyard.store.chains import Chain, ChainDeployment
from chainyard.store.db import after_commit
from chainyard.store.environments import ChainletEnvironmentSettings, Environment

# An environment's current deployment with its chainlets, and its chain's deployment count (which
# names the copy). Built once, as the update runs it on every call.
_CURRENT_WITH_COUNT = (
    select(ChainDeployment, deployment_count(bindparam("chain_id")))
    .where(ChainDeployment.id == bindparam("deployment_id"))
    .options(joinedload(ChainDeployment.chainlets))
)


def _settings_for(env: Environment, names: Sequence[str]) -> dict[str, ChainletEnvironmentSettings]:
    """The settings rows for `names`, after checking that the batch is well formed."""
    if not names:
        raise Invalid("updates must name at least one chainlet", code="EMPTY_UPDATE")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise Invalid(
                f"chainlet '{name}' is named twice in one update", code="DUPLICATE_CHAINLET"
            )
        seen.add(name)
    by_name = {s.chainlet_name: s for s in env.chainlet_settings}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise NotFound(
            f"chainlet '{unknown[0]}' has no settings in environment '{env.name}' "
            f"(chainlets with settings: {known})",
            code="CHAINLET_NOT_FOUND",
        )
    return by_name


def update_instance_types(
    core: Core,
    actor: Actor,
    chain_id: str,
    env_name: str,
    updates: Sequence[ChainletEnvironmentInstanceTypeUpdateV1],
) -> UpdateChainletEnvironmentInstanceTypeResponseV1:
    with core.db.write() as session:
        chain, env = lookups.chain_and_environment(session, actor, chain_id, env_name)
        by_name = _settings_for(env, [u.chainlet_name for u in updates])
        # Every update is checked before anything is written: a batch is all or nothing.
        resolved = {
            u.chainlet_name: instance_types.require(core.catalogue, u.instance_type_id).id
            for u in updates
        }
        changed = {n: t for n, t in resolved.items() if by_name[n].instance_type_id != t}

        def answer(
            deployment: ChainDeployment | None,
        ) -> UpdateChainletEnvironmentInstanceTypeResponseV1:
            return UpdateChainletEnvironmentInstanceTypeResponseV1(
                requires_redeployment=deployment is not None,
                chain_deployment=views.deployment_v1(deployment, core.catalogue)
                if deployment
                else None,
                chainlet_environment_settings=[
                    views.chainlet_settings_v1(s, core.catalogue) for s in env.chainlet_settings
                ],
            )

        if not changed:
            return answer(None)
        promotions.require_no_promotion(env)
        # Read before the settings change, so that it is written together with the rest at the
        # end rather than flushed ahead of this query; the chain's deployment count, which names
        # the copy, comes with it.
        found = (
            session.execute(
                _CURRENT_WITH_COUNT,
                {"deployment_id": env.current_deployment_id, "chain_id": chain.id},
            )
            .unique()
            .first()
            if env.current_deployment_id
            else None
        )
        for name, type_id in changed.items():
            by_name[name].instance_type_id = type_id
        if found is None:
            for name, type_id in changed.items():
                _audit_instance_type(session, actor, chain, None, name, "", type_id, env.name)
            return answer(None)

        current, existing = found
        new = copy_for_environment(
            session, actor, chain, current, env, name=deployment_name(existing), add=False
        )
        chainlet_ids = {c.name: c.id for c in new.chainlets}
        for name, type_id in changed.items():
            _audit_instance_type(
                session, actor, chain, new, name, chainlet_ids.get(name, ""), type_id, env.name
            )
        promotions.begin(session, actor, chain, env, new)
        # The request's rows in one statement rather than the ORM's flush of five (this is the
        # API's hot path; docs/architecture.md).
        write_together(session, [new, *new.chainlets], [(AuditLog, audit.take_pending(session))])
        after_commit(session, core.wake_reconciler)
        return answer(new)


def _audit_instance_type(
    session: Session,
    actor: Actor,
    chain: Chain,
    deployment: ChainDeployment | None,
    chainlet_name: str,
    chainlet_id: str,
    instance_type_id: str,
    env_name: str,
) -> None:
    audit.record(
        session,
        actor,
        "CHAINLET_INSTANCE_TYPE_CHANGED",
        {
            "chain_id": chain.id,
            "chain_name": chain.name,
            "chain_deployment_id": deployment.id if deployment else "",
            "chain_deployment_name": deployment.name if deployment else None,
            "chainlet_name": chainlet_name,
            "chainlet_id": chainlet_id,
            "instance_type_name": instance_type_id,
        },
        chain_id=chain.id,
        environment_name=env_name,
        chain_deployment_id=deployment.id if deployment else None,
    )


def update_autoscaling(
    core: Core,
    actor: Actor,
    chain_id: str,
    env_name: str,
    updates: Sequence[ChainletEnvironmentAutoscalingSettingsUpdateV1],
) -> UpdateAutoscalingSettingsResponseV1:
    answer = _update_autoscaling(core, actor, chain_id, env_name, updates)
    if answer.status != UpdateAutoscalingSettingsStatusV1.UNCHANGED:
        # After the commit, so that what the autoscaler reads next has the new settings.
        core.autoscaling_changed()
    return answer


def _update_autoscaling(
    core: Core,
    actor: Actor,
    chain_id: str,
    env_name: str,
    updates: Sequence[ChainletEnvironmentAutoscalingSettingsUpdateV1],
) -> UpdateAutoscalingSettingsResponseV1:
    with core.db.write() as session:
        chain = lookups.chain(session, actor, chain_id)
        env = lookups.environment(session, chain, env_name, for_update=True)
        by_name = _settings_for(env, [u.chainlet_name for u in updates])
        new_settings: dict[str, AutoscalingSettings] = {}
        for u in updates:
            current = AutoscalingSettings.from_dict(by_name[u.chainlet_name].autoscaling)
            sent = u.autoscaling_settings.model_dump(exclude_unset=True)
            new_settings[u.chainlet_name] = apply_update(current, sent)
        changed = {
            name: s
            for name, s in new_settings.items()
            if s != AutoscalingSettings.from_dict(by_name[name].autoscaling)
        }
        if not changed:
            return UpdateAutoscalingSettingsResponseV1(
                status=UpdateAutoscalingSettingsStatusV1.UNCHANGED,
                message="the settings already have these values",
            )
        current_dep = (
            session.get(ChainDeployment, env.current_deployment_id)
            if env.current_deployment_id
            else None
        )
        chainlets = {c.name: c for c in current_dep.chainlets} if current_dep else {}
        for name, settings in changed.items():
            previous = AutoscalingSettings.from_dict(by_name[name].autoscaling)
            by_name[name].autoscaling = settings.to_dict()
            chainlet = chainlets.get(name)
            if chainlet is not None:
                # Running replicas follow at once; no new deployment is made.
                chainlet.autoscaling = settings.to_dict()
                chainlet.desired_replicas = min(
                    max(chainlet.desired_replicas, settings.min_replica), settings.max_replica
                )
            audit.record(
                session,
                actor,
                "CHAINLET_AUTOSCALING_SETTINGS_CHANGED",
                {
                    **settings.to_dict(),
                    "chain_id": chain.id,
                    "chain_name": chain.name,
                    "chain_deployment_id": current_dep.id if current_dep else "",
                    "chain_deployment_name": current_dep.name if current_dep else None,
                    "chainlet_name": name,
                    "chainlet_id": chainlet.id if chainlet else "",
                    "previous_settings": previous.to_dict(),
                },
                chain_id=chain.id,
                environment_name=env.name,
                chain_deployment_id=current_dep.id if current_dep else None,
            )
        after_commit(session, core.wake_reconciler)
        if env.candidate_deployment_id:
            return UpdateAutoscalingSettingsResponseV1(
                status=UpdateAutoscalingSettingsStatusV1.QUEUED,
                message=(
                    "applied to the current deployment; the deployment being promoted takes "
                    "them when its promotion completes"
                ),
            )
        return UpdateAutoscalingSettingsResponseV1(
            status=UpdateAutoscalingSettingsStatusV1.ACCEPTED,
            message=f"updated {len(changed)} chainlet(s)",
        )
