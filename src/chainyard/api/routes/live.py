"""GET .../environments/{env_name}/live: replicas and requests per chainlet, now and over the
last minutes, for the dashboard's plots (a chainyard extension)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from chainyard.api.deps import CoreDep, Manager
from chainyard.schemas.live import EnvironmentLive
from chainyard.services import live

router = APIRouter(prefix="/v1/chains/{chain_id}/environments", tags=["environments"])


@router.get(
    "/{env_name}/live",
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
