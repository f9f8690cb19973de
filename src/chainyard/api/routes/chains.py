"""Chains and their deployments, chainlet logs and audit logs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chainyard.api.deps import CoreDep, Manager
from chainyard.schemas import (
    ActivateResponseV1,
    AuditLogEventTypeGroupV1,
    AuditLogSortDirectionV1,
    AuditLogSourceV1,
    ChainDeploymentsV1,
    ChainDeploymentTombstoneV1,
    ChainDeploymentV1,
    ChainsV1,
    ChainTombstoneV1,
    ChainV1,
    DeactivateResponseV1,
    GetLogsResponseV1,
    ListAuditLogsResponseV1,
    LogLevelV1,
    PaginationResponseV1,
    SortOrderV1,
)
from chainyard.services import audit, chainlet_logs, chains, deployments

router = APIRouter(prefix="/v1/chains", tags=["chains"])

Limit = Annotated[int | None, Query(ge=1, le=1000, description="Page size (chainyard extension)")]


@router.get("", response_model=ChainsV1, summary="Gets all chains")
def list_chains(
    core: CoreDep,
    actor: Manager,
    limit: Limit = None,
    after: Annotated[str | None, Query(description="Chain id to continue after")] = None,
) -> ChainsV1:
    return ChainsV1(chains=chains.list_(core, actor, limit=limit, after=after))


@router.get("/{chain_id}", response_model=ChainV1, summary="Gets a chain by ID")
def get_chain(chain_id: str, core: CoreDep, actor: Manager) -> ChainV1:
    return chains.get(core, actor, chain_id)


@router.delete("/{chain_id}", response_model=ChainTombstoneV1, summary="Deletes a chain by ID")
def delete_chain(chain_id: str, core: CoreDep, actor: Manager) -> ChainTombstoneV1:
    chains.delete(core, actor, chain_id)
    return ChainTombstoneV1(id=chain_id, deleted=True)


@router.get(
    "/{chain_id}/deployments",
    response_model=ChainDeploymentsV1,
    summary="Gets all chain deployments",
)
def list_deployments(
    chain_id: str,
    core: CoreDep,
    actor: Manager,
    limit: Limit = None,
    before: Annotated[str | None, Query(description="Deployment id to continue after")] = None,
) -> ChainDeploymentsV1:
    return ChainDeploymentsV1(
        deployments=deployments.list_(core, actor, chain_id, limit=limit, before=before)
    )


@router.get(
    "/{chain_id}/deployments/{chain_deployment_id}",
    response_model=ChainDeploymentV1,
    summary="Gets a chain deployment by ID",
)
def get_deployment(
    chain_id: str, chain_deployment_id: str, core: CoreDep, actor: Manager
) -> ChainDeploymentV1:
    return deployments.get(core, actor, chain_id, chain_deployment_id)


@router.delete(
    "/{chain_id}/deployments/{chain_deployment_id}",
    response_model=ChainDeploymentTombstoneV1,
    summary="Deletes a chain deployment by ID",
)
def delete_deployment(
    chain_id: str, chain_deployment_id: str, core: CoreDep, actor: Manager
) -> ChainDeploymentTombstoneV1:
    deployments.delete(core, actor, chain_id, chain_deployment_id)
    return ChainDeploymentTombstoneV1(id=chain_deployment_id, deleted=True, chain_id=chain_id)


@router.post(
    "/{chain_id}/deployments/{chain_deployment_id}/deactivate",
    response_model=DeactivateResponseV1,
    summary="Deactivates a chain deployment",
)
def deactivate_deployment(
    chain_id: str, chain_deployment_id: str, core: CoreDep, actor: Manager
) -> DeactivateResponseV1:
    deployments.deactivate(core, actor, chain_id, chain_deployment_id)
    return DeactivateResponseV1(success=True)


@router.post(
    "/{chain_id}/deployments/{chain_deployment_id}/activate",
    response_model=ActivateResponseV1,
    summary="Activates a chain deployment (chainyard extension)",
)
def activate_deployment(
    chain_id: str, chain_deployment_id: str, core: CoreDep, actor: Manager
) -> ActivateResponseV1:
    deployments.activate(core, actor, chain_id, chain_deployment_id)
    return ActivateResponseV1(success=True)


@router.get(
    "/{chain_id}/deployments/{chain_deployment_id}/chainlets/{chainlet_id}/logs",
    response_model=GetLogsResponseV1,
    summary="Gets the logs for a chainlet within a chain deployment",
)
def get_chainlet_logs(
    chain_id: str,
    chain_deployment_id: str,
    chainlet_id: str,
    core: CoreDep,
    actor: Manager,
    start_epoch_millis: int | None = None,
    end_epoch_millis: int | None = None,
    direction: SortOrderV1 | None = None,
    limit: Annotated[int | None, Query(ge=1, le=chainlet_logs.MAX_LIMIT)] = None,
    min_level: LogLevelV1 | None = None,
    replica: str | None = None,
    request_id: str | None = None,
    component: str | None = None,
    search_pattern: str | None = None,
    includes: Annotated[list[str] | None, Query()] = None,
    excludes: Annotated[list[str] | None, Query()] = None,
) -> GetLogsResponseV1:
    logs = chainlet_logs.get(
        core,
        actor,
        chain_id,
        chain_deployment_id,
        chainlet_id,
        start_epoch_millis=start_epoch_millis,
        end_epoch_millis=end_epoch_millis,
        direction=direction.value if direction else None,
        limit=limit,
        min_level=min_level.value if min_level else None,
        replica=replica,
        request_id=request_id,
        component=component,
        search_pattern=search_pattern,
        includes=includes,
        excludes=excludes,
    )
    return GetLogsResponseV1(logs=logs)


@router.get(
    "/{chain_id}/audit_logs",
    response_model=ListAuditLogsResponseV1,
    summary="Gets the audit log for a chain",
)
def get_audit_logs(
    chain_id: str,
    core: CoreDep,
    actor: Manager,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    direction: AuditLogSortDirectionV1 = AuditLogSortDirectionV1.DESC,
    search: str | None = None,
    event_type_groups: Annotated[list[AuditLogEventTypeGroupV1] | None, Query()] = None,
    user_ids: Annotated[list[str] | None, Query()] = None,
    deployment_ids: Annotated[list[str] | None, Query()] = None,
    chain_deployment_ids: Annotated[list[str] | None, Query()] = None,
    environment_names: Annotated[list[str] | None, Query()] = None,
    sources: Annotated[list[AuditLogSourceV1] | None, Query()] = None,
    start_epoch_millis: int | None = None,
    end_epoch_millis: int | None = None,
) -> ListAuditLogsResponseV1:
    if user_ids or deployment_ids:
        # Audit rows name API keys, never users, and never model deployments: such filters
        # match nothing rather than everything.
        return ListAuditLogsResponseV1(items=[], pagination=PaginationResponseV1(has_more=False))
    items, next_cursor = audit.list_for_chain(
        core,
        actor,
        chain_id,
        limit=limit,
        direction=direction.value,
        cursor=cursor,
        search=search,
        event_type_groups=[g.value for g in event_type_groups or []],
        chain_deployment_ids=chain_deployment_ids or [],
        environment_names=environment_names or [],
        sources=[s.value for s in sources or []],
        start_epoch_millis=start_epoch_millis,
        end_epoch_millis=end_epoch_millis,
    )
    return ListAuditLogsResponseV1(
        items=items,
        pagination=PaginationResponseV1(has_more=next_cursor is not None, cursor=next_cursor),
    )
