"""`chainyard.sdk.Client` against a live server: every endpoint, typed answers, typed errors."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
from pydantic import ValidationError

from chainyard.schemas import (
    APIKeyCategory,
    AuditLogEventTypeV1,
    ChainDeploymentV1,
    ChainEnvironmentV1,
    DeploymentStatusV1,
    PromotionCleanupStrategyV1,
    UpdateAutoscalingSettingsStatusV1,
)
from chainyard.sdk import (
    Client,
    Conflict,
    ConnectionFailed,
    DeploymentFailed,
    Forbidden,
    Invalid,
    NotFound,
    PromotionFailed,
    PromotionTimeout,
    Unauthorized,
)
from tests.sdk.live import LiveServer, hello_manifest, manifest_with


def _deploy_promoted(client: Client, name: str) -> tuple[str, ChainEnvironmentV1]:
    deployed = client.chains.deploy(hello_manifest(name))
    env = client.environments.wait_until_promoted(
        deployed.chain_id, "production", deployment_id=deployed.chain_deployment.id, timeout=20
    )
    return deployed.chain_id, env


def test_chains_and_deployments(client: Client, name: str) -> None:
    deployed = client.chains.deploy(hello_manifest(name, environment=None))
    chain_id = deployed.chain_id
    assert deployed.chain_deployment.status == DeploymentStatusV1.BUILDING
    seen: list[ChainDeploymentV1] = []
    active = client.deployments.wait_until_active(
        chain_id,
        deployed.chain_deployment.id,
        timeout=20,
        poll_interval=0.02,
        on_update=seen.append,
    )
    assert active.status == DeploymentStatusV1.ACTIVE
    assert seen and seen[-1].status == DeploymentStatusV1.ACTIVE
    assert {c.name for c in active.chainlets} == {"HelloWorld", "RandInt"}

    chain = client.chains.get(chain_id)
    assert (chain.name, chain.deployments_count) == (name, 1)
    assert chain_id in {c.id for c in client.chains.list().chains}
    assert chain_id in {c.id for c in client.chains.iter(page_size=1)}
    assert len(client.chains.list(limit=1).chains) == 1

    second = client.chains.deploy(
        {**hello_manifest(name, environment=None), "chain_id": chain_id, "chain_name": None}
    )
    ids = [d.id for d in client.deployments.iter(chain_id, page_size=1)]
    assert sorted(ids) == sorted([deployed.chain_deployment.id, second.chain_deployment.id])
    assert client.deployments.get(chain_id, second.chain_deployment.id).chain_id == chain_id

    tomb = client.deployments.delete(chain_id, second.chain_deployment.id)
    assert (tomb.id, tomb.deleted, tomb.chain_id) == (second.chain_deployment.id, True, chain_id)
    with pytest.raises(NotFound) as missing:
        client.deployments.get(chain_id, second.chain_deployment.id)
    assert missing.value.status == 404 and missing.value.code

    assert client.chains.delete(chain_id).deleted
    with pytest.raises(NotFound):
        client.chains.get(chain_id)


def test_deactivate_and_activate(client: Client, name: str) -> None:
    deployed = client.chains.deploy(hello_manifest(name, environment=None))
    chain_id, dep_id = deployed.chain_id, deployed.chain_deployment.id
    client.deployments.wait_until_active(chain_id, dep_id, timeout=20)
    assert client.deployments.deactivate(chain_id, dep_id).success
    with pytest.raises(DeploymentFailed) as inactive:
        client.deployments.wait_until_active(chain_id, dep_id, timeout=20, poll_interval=0.02)
    # Deactivated is at rest: waiting for ACTIVE would wait forever, so it fails at once.
    assert inactive.value.status == "INACTIVE"
    assert client.deployments.activate(chain_id, dep_id).success
    active = client.deployments.wait_until_active(chain_id, dep_id, timeout=20)
    assert active.status == DeploymentStatusV1.ACTIVE


def test_the_seed_operation_with_a_wait(client: Client, name: str) -> None:
    chain_id, env = _deploy_promoted(client, name)
    first = env.current_deployment
    assert first is not None and env.candidate_deployment is None

    update = client.environments.update_instance_types(chain_id, "production", {"RandInt": "2x8"})
    assert update.requires_redeployment and update.chain_deployment is not None
    settings = {s.chainlet_name: s.instance_type.id for s in update.chainlet_environment_settings}
    assert settings["RandInt"] == "2x8"

    views: list[ChainEnvironmentV1] = []
    promoted = client.wait_until_promoted(
        chain_id,
        "production",
        deployment_id=update.chain_deployment.id,
        timeout=20,
        poll_interval=0.02,
        on_update=views.append,
    )
    current = promoted.current_deployment
    assert current is not None and current.id == update.chain_deployment.id
    assert current.status == DeploymentStatusV1.ACTIVE
    assert {c.name: c.instance_type_name for c in current.chainlets}["RandInt"] == "2 vCPU, 8 GiB"
    assert views and views[-1] == promoted

    # The same types again change nothing.
    same = client.environments.update_instance_types(chain_id, "production", {"RandInt": "2x8"})
    assert not same.requires_redeployment and same.chain_deployment is None

    with pytest.raises(NotFound) as unknown:
        client.environments.update_instance_types(chain_id, "production", {"Nope": "2x8"})
    assert unknown.value.code == "CHAINLET_NOT_FOUND" and "Nope" in unknown.value.message
    with pytest.raises(Invalid) as bad_type:
        client.environments.update_instance_types(chain_id, "production", {"RandInt": "99x1"})
    assert bad_type.value.status == 400
    with pytest.raises(NotFound):
        client.environments.update_instance_types(chain_id, "staging", {"RandInt": "2x8"})


def test_inference_routes(client: Client, name: str) -> None:
    chain_id, env = _deploy_promoted(client, name)
    current = env.current_deployment
    assert current is not None
    entry = {c.name: c.id for c in current.chainlets}["HelloWorld"]

    answer = client.chains.run_remote(chain_id, {"max_value": 5})
    assert answer == {"deployment_id": current.id, "chainlet_id": entry, "input": {"max_value": 5}}
    by_env = client.chains.run_remote(chain_id, {"max_value": 1}, environment="production")
    assert by_env["deployment_id"] == current.id
    by_deployment = client.chains.run_remote(chain_id, [1, 2], deployment_id=current.id)
    assert by_deployment["input"] == [1, 2]
    assert client.chains.run_remote(chain_id, None)["input"] is None
    client.chains.wake(chain_id)
    client.chains.wake(chain_id, deployment_id=current.id)

    client.environments.create(chain_id, "staging")
    with pytest.raises(NotFound) as no_deployment:
        client.chains.run_remote(chain_id, {}, environment="staging")
    assert no_deployment.value.code == "MODEL_DOES_NOT_EXIST"
    with pytest.raises(ValueError):
        client.chains.run_remote(chain_id, {}, environment="staging", deployment_id=current.id)


def test_development_routes(client: Client, name: str) -> None:
    chain_id, env = _deploy_promoted(client, name)
    current = env.current_deployment
    assert current is not None
    with pytest.raises(NotFound) as none_yet:
        client.chains.run_remote(chain_id, {}, development=True)
    assert none_yet.value.code == "MODEL_DOES_NOT_EXIST"

    manifest = {**hello_manifest(name, environment=None), "development": True}
    development = client.chains.deploy(manifest).chain_deployment
    assert development.is_development and development.environment is None
    client.deployments.wait_until_active(chain_id, development.id, timeout=20)
    answer = client.chains.run_remote(chain_id, {"n": 1}, development=True)
    assert answer["deployment_id"] == development.id and answer["input"] == {"n": 1}
    with client.chains.stream_remote(chain_id, {}, development=True) as stream:
        assert development.id in b"".join(stream).decode()
    client.chains.wake(chain_id, development=True)
    assert client.chains.run_remote(chain_id, {})["deployment_id"] == current.id
    listed = {d.id: d.is_development for d in client.deployments.list(chain_id).deployments}
    assert listed == {development.id: True, current.id: False}
    with pytest.raises(ValueError):
        client.chains.run_remote(chain_id, {}, environment="production", development=True)


def test_environments(client: Client, name: str) -> None:
    chain_id, env = _deploy_promoted(client, name)
    first = env.current_deployment
    assert first is not None

    staging = client.environments.create(
        chain_id,
        "staging",
        promotion_settings={"promotion_cleanup_strategy": "KEEP"},
        chainlet_settings=[{"chainlet_name": "RandInt", "instance_type_id": "2x8"}],
    )
    assert staging.name == "staging" and staging.current_deployment is None
    assert staging.promotion_settings.promotion_cleanup_strategy == PromotionCleanupStrategyV1.KEEP
    assert {e.name for e in client.environments.list(chain_id).environments} == {
        "production",
        "staging",
    }
    with pytest.raises(Conflict):
        client.environments.create(chain_id, "staging")

    assert client.environments.update(
        chain_id, "staging", promotion_settings={"redeploy_on_promotion": True}
    ).ok
    got = client.environments.get(chain_id, "staging")
    assert got.promotion_settings.redeploy_on_promotion is True
    # Fields not sent keep their values.
    assert got.promotion_settings.promotion_cleanup_strategy == PromotionCleanupStrategyV1.KEEP

    promoting = client.environments.promote(
        chain_id, "staging", first.id, scale_down_previous_deployment=False
    )
    # redeploy_on_promotion: a copy is promoted, with staging's instance type.
    assert promoting.id != first.id
    promoted = client.environments.wait_until_promoted(chain_id, "staging", timeout=20)
    assert promoted.current_deployment is not None
    assert promoted.current_deployment.id == promoting.id
    types = {c.name: c.instance_type_name for c in promoted.current_deployment.chainlets}
    assert types["RandInt"] == "2 vCPU, 8 GiB"

    # Nothing in progress: the wait answers at once with what the environment serves.
    again = client.environments.wait_until_promoted(chain_id, "staging", timeout=0)
    assert again.current_deployment is not None and again.current_deployment.id == promoting.id

    with pytest.raises(ValidationError):
        client.environments.update(chain_id, "staging", promotion_settings={"rolling_deploy": 3})


def test_autoscaling_update(client: Client, name: str) -> None:
    chain_id, _ = _deploy_promoted(client, name)
    answer = client.environments.update_autoscaling(
        chain_id, "production", {"RandInt": {"min_replica": 1, "max_replica": 3}}
    )
    assert answer.status == UpdateAutoscalingSettingsStatusV1.ACCEPTED
    env = client.environments.get(chain_id, "production")
    by_name = {s.chainlet_name: s.autoscaling_settings for s in env.chainlet_settings}
    assert by_name["RandInt"] is not None and by_name["RandInt"].max_replica == 3
    with pytest.raises(ValidationError):
        client.environments.update_autoscaling(chain_id, "production", {"RandInt": {"maxx": 1}})
    with pytest.raises(NotFound):
        client.environments.update_autoscaling(chain_id, "production", {"Nope": {"min_replica": 1}})


def test_failed_promotion_and_timeout(client: Client, name: str) -> None:
    broken = client.chains.deploy(manifest_with(name, "BrokenRandInt", environment="production"))
    with pytest.raises(PromotionFailed) as failed:
        client.environments.wait_until_promoted(
            broken.chain_id, "production", timeout=20, poll_interval=0.02
        )
    assert failed.value.status == "BUILD_FAILED"
    assert failed.value.deployment_id == broken.chain_deployment.id
    assert "BUILD_FAILED" in str(failed.value)
    with pytest.raises(DeploymentFailed):
        client.deployments.wait_until_active(broken.chain_id, broken.chain_deployment.id)

    slow = client.chains.deploy(manifest_with(f"{name}s", "SlowRandInt", environment="production"))
    with pytest.raises(PromotionTimeout) as late:
        client.environments.wait_until_promoted(slow.chain_id, "production", timeout=0.1)
    assert isinstance(late.value, TimeoutError)
    assert late.value.deployment_id == slow.chain_deployment.id
    assert late.value.status in {"BUILDING", "DEPLOYING"}
    with pytest.raises(Conflict) as busy:
        client.environments.promote(slow.chain_id, "production", slow.chain_deployment.id)
    assert busy.value.code == "PROMOTION_IN_PROGRESS"


def test_logs_and_audit_logs(client: Client, name: str) -> None:
    chain_id, env = _deploy_promoted(client, name)
    current = env.current_deployment
    assert current is not None
    rand = next(c for c in current.chainlets if c.name == "RandInt")
    logs = client.deployments.logs(chain_id, current.id, rand.id, limit=100)
    assert any("RandInt" in line.message for line in logs.logs)
    none = client.deployments.logs(
        chain_id, current.id, rand.id, search_pattern="^nothing-like-this"
    )
    assert none.logs == []

    audit = client.chains.audit_logs(chain_id, limit=50)
    events = {item.event_type for item in audit.items}
    assert AuditLogEventTypeV1.CHAIN_DEPLOYED in events
    only = client.chains.audit_logs(chain_id, environment_names=["production"], direction="ASC")
    assert only.items


def test_catalogue_secrets_and_keys(client: Client, live: LiveServer) -> None:
    types = client.instance_types.list().instance_types
    assert "2x8" in {t.id for t in types}
    prices = client.instance_types.prices().instance_types
    assert {p.instance_type.id for p in prices} == {t.id for t in types}

    secret = client.secrets.upsert("sdk_token", "s3cret")
    assert secret.name == "sdk_token"
    assert "sdk_token" in {s.name for s in client.secrets.list().secrets}
    assert client.secrets.delete("sdk_token").name == "sdk_token"
    with pytest.raises(NotFound):
        client.secrets.delete("sdk_token")

    created = client.api_keys.create(type=APIKeyCategory.WORKSPACE_INVOKE, name="sdk-invoke")
    prefix = created.api_key.partition(".")[0]
    listed = {k.prefix: k for k in client.api_keys.list().keys}
    assert listed[prefix].type == APIKeyCategory.WORKSPACE_INVOKE
    with Client(live.url, created.api_key) as invoker, pytest.raises(Forbidden) as denied:
        invoker.chains.list()
    assert denied.value.status == 403
    assert client.api_keys.delete(prefix).prefix == prefix
    with Client(live.url, created.api_key) as revoked, pytest.raises(Unauthorized):
        revoked.chains.list()


def test_webhook_secrets(client: Client) -> None:
    before = {s.id for s in client.webhook_secrets.list().webhook_secrets}
    created = client.webhook_secrets.create()
    assert re.fullmatch(r"whsec_[A-Za-z0-9]{40}", created.secret)
    assert {p.id for p in created.previous} == before
    listed = client.webhook_secrets.list().webhook_secrets
    assert listed[0].id == created.id and listed[0].expires_at is None
    assert {s.id for s in listed} == before | {created.id}
    assert all(s.expires_at is not None for s in listed[1:])
    assert created.secret not in client.webhook_secrets.list().model_dump_json()


def test_async_requests(client: Client, name: str) -> None:
    chain_id, env = _deploy_promoted(client, name)
    assert env.current_deployment is not None
    production = env.current_deployment.id
    request_id = client.async_requests.submit(
        chain_id,
        {"max_value": 5},
        priority=1,
        max_time_in_queue_seconds=60,
        inference_retry_config={"max_attempts": 1},
    )
    assert len(request_id) == 20
    status = client.async_requests.status(request_id)
    assert (status.request_id, status.chain_id, status.deployment_id) == (
        request_id,
        chain_id,
        production,
    )
    # A server that runs async requests may have taken it already.
    assert status.status in {"QUEUED", "IN_PROGRESS", "SUCCEEDED"}
    assert status.webhook_status == "NO_WEBHOOK_PROVIDED"
    queue = client.async_requests.queue_status(chain_id)
    assert (queue.model_id, queue.deployment_id) == (chain_id, production)
    assert queue.num_queued_requests + queue.num_in_progress_requests <= 1

    canceled = client.async_requests.cancel(request_id)
    assert canceled.request_id == request_id
    assert canceled.canceled == (client.async_requests.status(request_id).status == "CANCELED")
    again = client.async_requests.cancel(request_id)
    assert again.canceled is False and again.message

    # The other targets: one deployment, and the development deployment (this chain has none).
    by_deployment = client.async_requests.submit(chain_id, {}, deployment_id=production)
    assert client.async_requests.status(by_deployment).deployment_id == production
    queue = client.async_requests.queue_status(chain_id, deployment_id=production)
    assert queue.deployment_id == production
    with pytest.raises(NotFound):
        client.async_requests.submit(chain_id, {}, development=True)
    with pytest.raises(NotFound):
        client.async_requests.queue_status(chain_id, environment="nosuchenv")
    with pytest.raises(ValueError, match="one of"):
        client.async_requests.submit(chain_id, {}, environment="a", deployment_id="b")

    with pytest.raises(Invalid, match="priority") as bad:
        client.async_requests.submit(chain_id, {}, priority=3)
    assert bad.value.code == "INVALID_REQUEST"
    with pytest.raises(Invalid) as refused:
        client.async_requests.submit(chain_id, {}, webhook_endpoint="http://127.0.0.1:9/hook")
    assert refused.value.code == "INVALID_WEBHOOK_ENDPOINT"
    with pytest.raises(ValidationError):
        client.async_requests.submit(chain_id, {}, inference_retry_config={"max_attempts": 11})
    with pytest.raises(NotFound) as missing:
        client.async_requests.status("nosuchrequest")
    assert missing.value.code == "ASYNC_REQUEST_NOT_FOUND"


def test_auth_and_transport_errors(live: LiveServer) -> None:
    with Client(live.url, None) as anonymous:
        assert anonymous.health()["status"] == "ok"
        with pytest.raises(Unauthorized) as missing:
            anonymous.chains.list()
    assert missing.value.status == 401 and missing.value.message
    with Client(live.url, live.key + "x") as wrong, pytest.raises(Unauthorized):
        wrong.secrets.list()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with Client(closed, live.key, timeout=2) as nowhere, pytest.raises(ConnectionFailed):
        nowhere.chains.list()
    with pytest.raises(ValueError):
        Client("127.0.0.1:8080")


def test_invalid_requests_are_typed(client: Client, name: str) -> None:
    with pytest.raises(Invalid) as bad_manifest:
        client.chains.deploy(
            {"chain_name": name, "chainlets": [{"name": "A", "compute": {"memory": "lots"}}]}
        )
    assert bad_manifest.value.status == 400
    assert bad_manifest.value.code
    body: Any = bad_manifest.value.body
    assert body["code"] == bad_manifest.value.code
    with pytest.raises(ValidationError):
        client.chains.deploy({"chainlets": []})
    with pytest.raises(ValueError):
        client.chains.get("")
