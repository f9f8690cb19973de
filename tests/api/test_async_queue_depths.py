"""GET /v1/chains/{chain_id}/async_queue: the dashboard's async queue depth per deployment (a
chainyard extension). Requests are put in the server's store with the services, and taken with
a long lease by this test's own holder, so that they stay where the test left them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import select

from chainyard.domain import async_requests as d
from chainyard.services import api_keys
from chainyard.services import async_queue as queue
from chainyard.services import async_requests as requests
from chainyard.services.context import Actor
from chainyard.store.async_requests import AsyncRequest
from chainyard.store.base import utcnow
from tests.support.server import Api, hello_manifest

PRODUCTION = d.AsyncTarget(d.ENVIRONMENT, "production")
HOLDER = "depth-test"
# Taken requests stay this test's for the whole test.
LEASE_SECONDS = 3600.0


def _path(chain_id: str) -> str:
    return f"/v1/chains/{chain_id}/async_queue"


class _Queue:
    """Enqueues into the server's store as `key`, one second apart (so in claim order within a
    priority)."""

    def __init__(self, api: Api, key: str | None = None) -> None:
        self.api = api
        self.actor: Actor = api_keys.authenticate(api.core, key or api.key)
        self.start = utcnow() - dt.timedelta(seconds=100)
        self.count = 0

    def put(
        self,
        chain_id: str,
        deployment_id: str,
        target: d.AsyncTarget = PRODUCTION,
        *,
        priority: int = 1,
    ) -> str:
        self.count += 1
        answer = requests.enqueue(
            self.api.core.db,
            self.actor,
            chain_id=chain_id,
            deployment_id=deployment_id,
            target=target,
            spec=d.check({"model_input": {"n": self.count}, "priority": priority}),
            now=self.start + dt.timedelta(seconds=self.count),
        )
        return answer.request_id

    def queued(self, chain_id: str) -> list[str]:
        with self.api.core.db.read() as session:
            return list(
                session.scalars(
                    select(AsyncRequest.id).where(
                        AsyncRequest.chain_id == chain_id, AsyncRequest.status == "QUEUED"
                    )
                )
            )


def _answer(api: Api, chain_id: str) -> dict[str, Any]:
    response = api.get(_path(chain_id))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _depth(deployment_id: str, queued: int, in_progress: int) -> dict[str, Any]:
    return {
        "deployment_id": deployment_id,
        "num_queued_requests": queued,
        "num_in_progress_requests": in_progress,
    }


def test_counts_per_status_and_where_queued_requests_will_run(api: Api) -> None:
    name = f"depth-{uuid.uuid4().hex[:6]}"
    first = api.deploy(hello_manifest(chain_name=name))
    chain_id, current = first["chain_id"], first["chain_deployment"]["id"]
    api.wait_current(chain_id, current)
    assert _answer(api, chain_id) == {"chain_id": chain_id, "deployments": []}
    # A published deployment in no environment, and the chain's development deployment.
    other = api.deploy(hello_manifest(chain_name=name, environment=None))["chain_deployment"]["id"]
    development = api.deploy(
        {**hello_manifest(chain_name=name, environment=None), "development": True}
    )["chain_deployment"]["id"]

    q = _Queue(api)
    running, succeeded, canceled, queued = (q.put(chain_id, current) for _ in range(4))
    taken = queue.claim(api.core.db, HOLDER, limit=2, lease_seconds=LEASE_SECONDS)
    assert [c.request_id for c in taken] == [running, succeeded]
    assert queue.record_result(api.core.db, HOLDER, succeeded, {"ok": True}).held
    assert requests.cancel(api.core.db, q.actor, canceled).canceled
    failed = q.put(chain_id, current, d.AsyncTarget(d.DEPLOYMENT), priority=0)
    [taken_failed] = queue.claim(api.core.db, HOLDER, limit=1, lease_seconds=LEASE_SECONDS)
    assert taken_failed.request_id == failed
    assert queue.record_failure(
        api.core.db, HOLDER, failed, "MODEL_INVALID_INPUT", "no", retryable=False
    ).held
    # Stored on another deployment than their target's current one (queued before a promotion,
    # or a development push): they count where the claim will run them.
    q.put(chain_id, other, PRODUCTION)
    q.put(chain_id, other, d.AsyncTarget(d.DEVELOPMENT))
    # Asked of that deployment itself: they stay there.
    q.put(chain_id, other, d.AsyncTarget(d.DEPLOYMENT))
    q.put(chain_id, other, d.AsyncTarget(d.DEPLOYMENT))
    # Another chain's requests are not this chain's.
    elsewhere = api.deploy(hello_manifest(chain_name=f"{name}-x", environment=None))
    q.put(elsewhere["chain_id"], elsewhere["chain_deployment"]["id"], d.AsyncTarget(d.DEPLOYMENT))

    body = _answer(api, chain_id)
    assert body["chain_id"] == chain_id
    assert body["deployments"] == sorted(
        [_depth(current, 2, 1), _depth(other, 2, 0), _depth(development, 1, 0)],
        key=lambda depth: str(depth["deployment_id"]),
    )
    expected = {
        running: "IN_PROGRESS",
        succeeded: "SUCCEEDED",
        canceled: "CANCELED",
        failed: "FAILED",
        queued: "QUEUED",
    }
    assert {r: requests.status(api.core.db, q.actor, r).status for r in expected} == expected

    # The chain's figures move with the queue: the running one ends, the rest are canceled.
    assert queue.record_result(api.core.db, HOLDER, running, None).held
    for request_id in q.queued(chain_id):
        assert requests.cancel(api.core.db, q.actor, request_id).canceled
    assert _answer(api, chain_id)["deployments"] == []
    assert [x["deployment_id"] for x in _answer(api, elsewhere["chain_id"])["deployments"]] == [
        elsewhere["chain_deployment"]["id"]
    ]


def test_management_keys_of_the_chains_workspace_only(api: Api) -> None:
    chain = api.deploy(hello_manifest(chain_name=f"depth-{uuid.uuid4().hex[:6]}"))
    chain_id = chain["chain_id"]
    path = _path(chain_id)
    assert api.client.get(path).status_code == 401
    assert api.client.get(path, headers={"Authorization": "Bearer nope.nope"}).status_code == 401
    for key_type in ("WORKSPACE_INVOKE", "WORKSPACE_EXPORT_METRICS", "WORKSPACE_MANAGE_API_KEYS"):
        key = api_keys.admin_create_key(api.core, "default", key_type)
        refused = api.get(path, key=key)
        assert refused.status_code == 403, (key_type, refused.text)
        assert refused.json()["code"] == "PERMISSION_DENIED"
    manager = api_keys.admin_create_key(api.core, "default", "WORKSPACE_MANAGE_ALL")
    assert api.get(path, key=manager).json() == {"chain_id": chain_id, "deployments": []}

    # Another workspace's chain is a 404, also when that workspace has one of the same name
    # with requests of its own.
    other_key = api_keys.admin_create_key(api.core, f"other-{uuid.uuid4().hex[:6]}", "PERSONAL")
    theirs = api.deploy(hello_manifest(chain_name="mine", environment=None), key=other_key)
    _Queue(api, other_key).put(
        theirs["chain_id"], theirs["chain_deployment"]["id"], d.AsyncTarget(d.DEPLOYMENT)
    )
    for key, chain_of_other in ((other_key, chain_id), (api.key, theirs["chain_id"])):
        response = api.get(_path(chain_of_other), key=key)
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "CHAIN_NOT_FOUND"
    assert api.get(_path(theirs["chain_id"]), key=other_key).json()["deployments"] == [
        _depth(theirs["chain_deployment"]["id"], 1, 0)
    ]
    assert api.get(_path("nochain0")).status_code == 404

    operation = api.client.get("/openapi.json").json()["paths"][
        "/v1/chains/{chain_id}/async_queue"
    ]["get"]
    assert "chainyard extension" in operation["summary"]
