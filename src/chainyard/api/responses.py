"""Answering with a model the service already built and validated.

FastAPI checks a returned model against the route's `response_model` again and, for a plain
`def` route, does so on a second trip through the thread pool. A hot route (the instance-type
update) is `async def` instead, runs its service in the pool once, and sends the model as JSON
itself. `response_model` stays on the route: it documents the answer in /openapi.json.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec

from fastapi import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

P = ParamSpec("P")


def model_json(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


async def answer_from(
    service: Callable[P, BaseModel], *args: P.args, **kwargs: P.kwargs
) -> Response:
    """Runs a blocking service call in the thread pool and sends what it returns."""
    return model_json(await run_in_threadpool(service, *args, **kwargs))
