"""`chainyard.sdk.AsyncClient` against a live server: the same calls, awaited."""

from __future__ import annotations

import asyncio

import pytest

from chainyard.schemas import ChainEnvironmentV1, DeploymentStatusV1
from chainyard.sdk import AsyncClient, Conflict, NotFound, PromotionFailed, Unauthorized
from tests.sdk.live import LiveServer, hello_manifest, manifest_with


async def _scenario(live: LiveServer, name: str) -> None:
    async with AsyncClient(live.url, live.key, timeout=30) as client:
        deployed = await client.chains.deploy(hello_manifest(name))
        chain_id = deployed.chain_id
        env = await client.wait_until_promoted(chain_id, "production", timeout=20)
        assert env.current_deployment is not None
        assert env.current_deployment.id == deployed.chain_deployment.id

        update = await client.environments.update_instance_types(
            chain_id, "production", {"HelloWorld": "1x4"}
        )
        assert update.chain_deployment is not None
        seen: list[ChainEnvironmentV1] = []
        promoted = await client.environments.wait_until_promoted(
            chain_id,
            "production",
            deployment_id=update.chain_deployment.id,
            timeout=20,
            poll_interval=0.02,
            on_update=seen.append,
        )
        assert promoted.current_deployment is not None
        assert promoted.current_deployment.id == update.chain_deployment.id
        assert seen[-1] == promoted

        answer = await client.chains.run_remote(
            chain_id, {"max_value": 5}, environment="production"
        )
        assert answer["deployment_id"] == update.chain_deployment.id
        assert answer["input"] == {"max_value": 5}

        chains = [c.id async for c in client.chains.iter(page_size=1)]
        assert chain_id in chains
        deployments = [d.id async for d in client.deployments.iter(chain_id, page_size=1)]
        assert set(deployments) == {deployed.chain_deployment.id, update.chain_deployment.id}
        active = await client.deployments.wait_until_active(chain_id, update.chain_deployment.id)
        assert active.status == DeploymentStatusV1.ACTIVE

        rand = next(c for c in active.chainlets if c.name == "RandInt")
        logs = await client.deployments.logs(chain_id, active.id, rand.id)
        assert logs.logs
        assert (await client.chains.audit_logs(chain_id)).items
        assert (await client.environments.list(chain_id)).environments
        assert (await client.instance_types.list()).instance_types
        assert (await client.instance_types.prices()).instance_types
        assert await client.secrets.upsert("async_s", "v")
        assert "async_s" in {s.name for s in (await client.secrets.list()).secrets}
        await client.secrets.delete("async_s")
        assert (await client.api_keys.list()).keys
        created = await client.webhook_secrets.create()
        listed = (await client.webhook_secrets.list()).webhook_secrets
        assert created.secret.startswith("whsec_") and listed[0].id == created.id
        assert (await client.health())["status"] == "ok"

        with pytest.raises(Conflict):
            await client.deployments.delete(chain_id, update.chain_deployment.id)
        await client.deployments.delete(chain_id, deployed.chain_deployment.id)
        with pytest.raises(NotFound):
            await client.deployments.get(chain_id, deployed.chain_deployment.id)

        broken = await client.chains.deploy(
            manifest_with(f"{name}b", "BrokenRandInt", environment="production")
        )
        with pytest.raises(PromotionFailed) as failed:
            await client.environments.wait_until_promoted(
                broken.chain_id, "production", timeout=20, poll_interval=0.02
            )
        assert failed.value.status == "BUILD_FAILED"
        await client.chains.delete(chain_id)

    async with AsyncClient(live.url, "nobody.0123456789abcdefghij") as stranger:
        with pytest.raises(Unauthorized):
            await stranger.chains.list()


def test_async_client(live: LiveServer, name: str) -> None:
    asyncio.run(_scenario(live, name))


def test_async_requests_run_concurrently(live: LiveServer, name: str) -> None:
    async def main() -> list[str]:
        async with AsyncClient(live.url, live.key) as client:
            deployed = await asyncio.gather(
                *(
                    client.chains.deploy(hello_manifest(f"{name}{i}", environment=None))
                    for i in range(3)
                )
            )
            return [d.chain_id for d in deployed]

    assert len(set(asyncio.run(main()))) == 3


def test_async_inference_requests(live: LiveServer, name: str) -> None:
    """`client.async_requests`, awaited: submit, status, queue status and cancel."""

    async def main() -> None:
        async with AsyncClient(live.url, live.key, timeout=30) as client:
            deployed = await client.chains.deploy(hello_manifest(name))
            chain_id = deployed.chain_id
            await client.wait_until_promoted(chain_id, "production", timeout=20)
            request_id = await client.async_requests.submit(
                chain_id, {"max_value": 5}, environment="production", priority=2
            )
            status = await client.async_requests.status(request_id)
            assert status.chain_id == chain_id
            assert status.deployment_id == deployed.chain_deployment.id
            queue = await client.async_requests.queue_status(chain_id, environment="production")
            assert queue.deployment_id == deployed.chain_deployment.id
            canceled = await client.async_requests.cancel(request_id)
            after = await client.async_requests.status(request_id)
            assert canceled.canceled == (after.status == "CANCELED")
            assert (await client.async_requests.cancel(request_id)).canceled is False
            with pytest.raises(NotFound):
                await client.async_requests.status("nosuchrequest")

    asyncio.run(main())
