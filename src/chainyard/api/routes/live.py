"""The dashboard's live figures (chainyard extensions): GET .../environments/{env_name}/live,
replicas and requests per chainlet, now and over the last minutes, for its plots; and
GET /v1/chains/{chain_id}/async_queue, the chain's async requests queued and in progress per
deployment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from chainyard.api.deps import CoreDep, Manager
from chainyard.schemas.live import ChainAsyncQueue, DeploymentAsyncQueue, EnvironmentLive
from chainyard.services import async_requests, live

router = APIRouter(prefix="/v1/chains/{chain_id}")


@router.get(
    "/environments/{env_name}/live",
    tags=["environments"],
    response_model=EnvironmentLive,
    summary="Live replica and request figures of an environment's chainlets (chainyard extension)",
)
async def environment_live(
    chain_id: str,
    env_name: str,
    request: Request,
    core: CoreDep,
    actor: Manager,
    window_seconds: Annotated[
        int, Query(ge=1, le=live.WINDOW_SECONDS, description="How far back the series go")
    ] = live.WINDOW_SECONDS,
) -> EnvironmentLive:
    rows = await run_in_threadpool(live.read_environment, core, actor, chain_id, env_name)
    # On the event loop, where the sampler's inputs change (see LiveSampler._record).
    sampler: live.LiveSampler = request.app.state.live
    return live.environment_live(rows, sampler, window_seconds)


@router.get(
    "/async_queue",
    tags=["chains"],
    response_model=ChainAsyncQueue,
    summary="Async requests queued and in progress per deployment of a chain (chainyard extension)",
)
async def chain_async_queue(chain_id: str, core: CoreDep, actor: Manager) -> ChainAsyncQueue:
    depths = await run_in_threadpool(async_requests.depths_for_chain, core.db, actor, chain_id)
    return ChainAsyncQueue(
        chain_id=chain_id,
        deployments=[
            DeploymentAsyncQueue(
                deployment_id=deployment_id,
                num_queued_requests=depth.queued,
                num_in_progress_requests=depth.in_progress,
            )
            for deployment_id, depth in sorted(depths.items())
        ],
    )
