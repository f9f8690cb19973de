"""Baseten's model predict URLs, for a `chains.ModelBase` pushed on its own.

Baseten deploys such a file (`truss push model.py`) as a model, called at
`model-{model_id}.<domain>/{production,development,environments/{env},deployment/{id}}/predict`
with the same JSON body as a chainlet's run_remote (predict's arguments by name). chainyard deploys
it as a chain of one, whose chain id stands for the model id: these routes are run_remote under
the model's names, in the Host form (`model-{id}.<domain>`) and the path form
`/models/{model_id}/...`.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from chainyard.domain.errors import NotFound
from chainyard.gateway import routes
from chainyard.services.context import Core

router = APIRouter(tags=["inference"])

CoreDep = Annotated[Core, Depends(routes._core)]
_HOST = re.compile(r"^model-([a-z0-9]+)(?:-[a-z0-9-]+)?\.", re.IGNORECASE)


def _model_from_host(request: Request) -> str:
    match = _HOST.match(request.headers.get("host", ""))
    if match is None:
        raise NotFound("use /models/{model_id}/..., or a Host header model-{model_id}.<domain>")
    return match.group(1).lower()


@router.post("/models/{model_id}/environments/{env_name}/predict")
async def predict_environment(
    model_id: str, env_name: str, request: Request, core: CoreDep
) -> Response:
    return await routes._run(request, core, model_id, environment=env_name)


@router.post("/models/{model_id}/production/predict")
async def predict_production(model_id: str, request: Request, core: CoreDep) -> Response:
    return await routes._run(request, core, model_id, environment="production")


@router.post("/models/{model_id}/deployment/{deployment_id}/predict")
async def predict_deployment(
    model_id: str, deployment_id: str, request: Request, core: CoreDep
) -> Response:
    return await routes._run(request, core, model_id, deployment_id=deployment_id)


@router.post("/models/{model_id}/development/predict")
async def predict_development(model_id: str, request: Request, core: CoreDep) -> Response:
    return await routes._run(request, core, model_id, development=True)


@router.post("/environments/{env_name}/predict")
async def host_predict_environment(env_name: str, request: Request, core: CoreDep) -> Response:
    return await routes.guarded(
        lambda: routes._run(request, core, _model_from_host(request), environment=env_name)
    )


@router.post("/production/predict")
async def host_predict_production(request: Request, core: CoreDep) -> Response:
    return await routes.guarded(
        lambda: routes._run(request, core, _model_from_host(request), environment="production")
    )


@router.post("/deployment/{deployment_id}/predict")
async def host_predict_deployment(deployment_id: str, request: Request, core: CoreDep) -> Response:
    return await routes.guarded(
        lambda: routes._run(request, core, _model_from_host(request), deployment_id=deployment_id)
    )


@router.post("/development/predict")
async def host_predict_development(request: Request, core: CoreDep) -> Response:
    return await routes.guarded(
        lambda: routes._run(request, core, _model_from_host(request), development=True)
    )
