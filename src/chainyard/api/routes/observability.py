"""GET /metrics: Prometheus text for the whole server (an operator's view, so it takes a key
that may manage the workspace or export metrics)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from chainyard.api.deps import AnyActor
from chainyard.domain.errors import Forbidden

router = APIRouter(tags=["observability"])

_ALLOWED = frozenset({"PERSONAL", "WORKSPACE_MANAGE_ALL", "WORKSPACE_EXPORT_METRICS"})


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, actor: AnyActor) -> Response:
    if actor.key_type not in _ALLOWED:
        raise Forbidden(f"an API key of type {actor.key_type} may not read metrics")
    # The whole server's figures: with worker processes, the controller gathers every worker's.
    body: bytes = await request.app.state.render_metrics()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
