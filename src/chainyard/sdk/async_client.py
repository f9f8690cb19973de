"""`AsyncClient`: the asyncio twin of `Client` (client.py), method for method."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from chainyard.schemas import (
    ActivateResponseV1,
    APIKeyCategory,
    APIKeysV1,
    APIKeyTombstoneV1,
    APIKeyV1,
    AuditLogEventTypeGroupV1,
    AuditLogSortDirectionV1,
    AuditLogSourceV1,
    ChainDeploymentsV1,
    ChainDeploymentTombstoneV1,
    ChainDeploymentV1,
    ChainEnvironmentsV1,
    ChainEnvironmentV1,
    ChainletEnvironmentSettingsRequestV1,
    ChainsV1,
    ChainTombstoneV1,
    ChainV1,
    CreatedWebhookSecretV1,
    DeactivateResponseV1,
    DeployManifest,
    DeployResponse,
    GetLogsResponseV1,
    InstanceTypePricesV1,
    InstanceTypesV1,
    ListAuditLogsResponseV1,
    LogLevelV1,
    SecretsV1,
    SecretTombstoneV1,
    SecretV1,
    SortOrderV1,
    UpdateAutoscalingSettingsResponseV1,
    UpdateAutoscalingSettingsV1,
    UpdateChainEnvironmentResponseV1,
    UpdateChainletEnvironmentInstanceTypeResponseV1,
    UpdatePromotionSettingsV1,
    WebhookSecretsV1,
)
from chainyard.sdk import _http, _ops, _streams
from chainyard.sdk._waits import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_WAIT_TIMEOUT,
    ActiveWatch,
    PromotionWatch,
    Step,
    backoff,
)
from chainyard.sdk.async_requests import AsyncAsyncRequests as AsyncRequests
from chainyard.sdk.development import AsyncDevelopment as Development
from chainyard.sdk.errors import NotFound, RateLimited

__all__ = ["AsyncClient"]

T = TypeVar("T")


class _Resource:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def _call(self, op: _ops.Op[T]) -> T:
        return await self._client._call(op)


class Chains(_Resource):
    """Chains, deploys, audit logs, and calling a chain (`run_remote`, `wake`)."""

    async def list(self, *, limit: int | None = None, after: str | None = None) -> ChainsV1:
        """Chains of the workspace; without `limit`, all of them."""
        return await self._call(_ops.list_chains(limit=limit, after=after))

    async def iter(self, *, page_size: int = 100) -> AsyncIterator[ChainV1]:
        """Every chain, fetched `page_size` at a time."""
        after: str | None = None
        while True:
            page = (await self.list(limit=page_size, after=after)).chains
            for chain in page:
                yield chain
            if len(page) < page_size:
                return
            after = page[-1].id

    async def get(self, chain_id: str) -> ChainV1:
        return await self._call(_ops.get_chain(chain_id))

    async def delete(self, chain_id: str) -> ChainTombstoneV1:
        return await self._call(_ops.delete_chain(chain_id))

    async def deploy(
        self,
        manifest: DeployManifest | Mapping[str, Any],
        *,
        source: bytes | None = None,
        timeout: float | None = None,
    ) -> DeployResponse:
        """Creates a deployment from a manifest; `source` is the chain's directory as .tar.gz."""
        return await self._call(_ops.deploy(manifest, source=source, timeout=timeout))

    async def audit_logs(
        self,
        chain_id: str,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        direction: AuditLogSortDirectionV1 | str | None = None,
        search: str | None = None,
        event_type_groups: Iterable[AuditLogEventTypeGroupV1 | str] | None = None,
        chain_deployment_ids: Iterable[str] | None = None,
        environment_names: Iterable[str] | None = None,
        sources: Iterable[AuditLogSourceV1 | str] | None = None,
        start_epoch_millis: int | None = None,
        end_epoch_millis: int | None = None,
    ) -> ListAuditLogsResponseV1:
        return await self._call(
            _ops.audit_logs(
                chain_id,
                cursor=cursor,
                limit=limit,
                direction=direction,
                search=search,
                event_type_groups=event_type_groups,
                chain_deployment_ids=chain_deployment_ids,
                environment_names=environment_names,
                sources=sources,
                start_epoch_millis=start_epoch_millis,
                end_epoch_millis=end_epoch_millis,
            )
        )

    async def run_remote(
        self,
        chain_id: str,
        data: Any,
        *,
        environment: str | None = None,
        deployment_id: str | None = None,
        development: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Calls the chain's entrypoint with `data` (its `run_remote` arguments as JSON) and
        returns what it answers. Production by default; or an `environment`, a deployment, or
        (`development=True`) the chain's development deployment."""
        return await self._call(
            _ops.run_remote(
                chain_id,
                data,
                environment=environment,
                deployment_id=deployment_id,
                development=development,
                timeout=timeout,
            )
        )

    @contextlib.asynccontextmanager
    async def stream_remote(
        self,
        chain_id: str,
        data: Any,
        *,
        environment: str | None = None,
        deployment_id: str | None = None,
        development: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[_streams.AsyncRemoteStream]:
        """Calls the chain's entrypoint like `run_remote`, and gives its answer as it comes:
        `async with client.chains.stream_remote(id, data) as stream:`, then
        `async for chunk in stream` (bytes) or `async for text in stream.text()`. `timeout`
        bounds each wait for a chunk. An error answer raises as in `run_remote`; a chain that
        fails mid-stream raises `StreamBrokenOff` from the iteration."""
        op = _ops.run_remote(
            chain_id,
            data,
            environment=environment,
            deployment_id=deployment_id,
            development=development,
            timeout=timeout,
        )
        async with _streams.open_async_stream(self._client._http, self._client.url, op) as stream:
            yield stream

    async def wake(
        self,
        chain_id: str,
        *,
        environment: str | None = None,
        deployment_id: str | None = None,
        development: bool = False,
    ) -> None:
        """Starts a scaled-to-zero deployment without sending it a request."""
        await self._call(
            _ops.wake(
                chain_id,
                environment=environment,
                deployment_id=deployment_id,
                development=development,
            )
        )


class Deployments(_Resource):
    """Deployments of a chain, their activation, and their chainlets' logs."""

    async def list(
        self, chain_id: str, *, limit: int | None = None, before: str | None = None
    ) -> ChainDeploymentsV1:
        """Newest first; without `limit`, all of them."""
        return await self._call(_ops.list_deployments(chain_id, limit=limit, before=before))

    async def iter(
        self, chain_id: str, *, page_size: int = 100
    ) -> AsyncIterator[ChainDeploymentV1]:
        before: str | None = None
        while True:
            page = (await self.list(chain_id, limit=page_size, before=before)).deployments
            for deployment in page:
                yield deployment
            if len(page) < page_size:
                return
            before = page[-1].id

    async def get(self, chain_id: str, deployment_id: str) -> ChainDeploymentV1:
        return await self._call(_ops.get_deployment(chain_id, deployment_id))

    async def delete(self, chain_id: str, deployment_id: str) -> ChainDeploymentTombstoneV1:
        return await self._call(_ops.delete_deployment(chain_id, deployment_id))

    async def activate(self, chain_id: str, deployment_id: str) -> ActivateResponseV1:
        return await self._call(_ops.activate_deployment(chain_id, deployment_id))

    async def deactivate(self, chain_id: str, deployment_id: str) -> DeactivateResponseV1:
        return await self._call(_ops.deactivate_deployment(chain_id, deployment_id))

    async def logs(
        self,
        chain_id: str,
        deployment_id: str,
        chainlet_id: str,
        *,
        start_epoch_millis: int | None = None,
        end_epoch_millis: int | None = None,
        direction: SortOrderV1 | str | None = None,
        limit: int | None = None,
        min_level: LogLevelV1 | str | None = None,
        replica: str | None = None,
        request_id: str | None = None,
        search_pattern: str | None = None,
        includes: Iterable[str] | None = None,
        excludes: Iterable[str] | None = None,
    ) -> GetLogsResponseV1:
        """A chainlet's build and replica output (the last 30 minutes unless a window is given)."""
        return await self._call(
            _ops.chainlet_logs(
                chain_id,
                deployment_id,
                chainlet_id,
                start_epoch_millis=start_epoch_millis,
                end_epoch_millis=end_epoch_millis,
                direction=direction,
                limit=limit,
                min_level=min_level,
                replica=replica,
                request_id=request_id,
                search_pattern=search_pattern,
                includes=includes,
                excludes=excludes,
            )
        )

    async def wait_until_active(
        self,
        chain_id: str,
        deployment_id: str,
        *,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        on_update: Callable[[ChainDeploymentV1], None] | None = None,
    ) -> ChainDeploymentV1:
        """Polls until the deployment is ACTIVE. Raises `DeploymentFailed` when it ends in a
        failed or inactive status, `WaitTimeout` when `timeout` seconds pass first."""
        watch = ActiveWatch(chain_id, deployment_id, timeout)
        while True:
            try:
                deployment = await self.get(chain_id, deployment_id)
            except RateLimited as exc:
                # A poll told to slow down waits as long as it is told, then looks again.
                if watch.deadline.passed():
                    raise watch.timed_out() from exc
                await asyncio.sleep(watch.deadline.sleep_for(backoff(exc, poll_interval)))
                continue
            if on_update is not None:
                on_update(deployment)
            if watch.observe(deployment) is Step.DONE:
                return deployment
            if watch.deadline.passed():
                raise watch.timed_out()
            await asyncio.sleep(watch.deadline.sleep_for(poll_interval))


class Environments(_Resource):
    """Environments of a chain, promotion, and per-chainlet settings."""

    async def list(self, chain_id: str) -> ChainEnvironmentsV1:
        return await self._call(_ops.list_environments(chain_id))

    async def get(self, chain_id: str, environment: str) -> ChainEnvironmentV1:
        return await self._call(_ops.get_environment(chain_id, environment))

    async def create(
        self,
        chain_id: str,
        name: str,
        *,
        promotion_settings: UpdatePromotionSettingsV1 | Mapping[str, Any] | None = None,
        chainlet_settings: Sequence[ChainletEnvironmentSettingsRequestV1 | Mapping[str, Any]]
        | None = None,
    ) -> ChainEnvironmentV1:
        return await self._call(
            _ops.create_environment(
                chain_id,
                name,
                promotion_settings=promotion_settings,
                chainlet_settings=chainlet_settings,
            )
        )

    async def update(
        self,
        chain_id: str,
        environment: str,
        *,
        promotion_settings: UpdatePromotionSettingsV1 | Mapping[str, Any],
    ) -> UpdateChainEnvironmentResponseV1:
        """Changes the promotion settings that are given; the others stay."""
        return await self._call(
            _ops.update_environment(chain_id, environment, promotion_settings=promotion_settings)
        )

    async def promote(
        self,
        chain_id: str,
        environment: str,
        deployment_id: str,
        *,
        scale_down_previous_deployment: bool = True,
    ) -> ChainDeploymentV1:
        """Starts promoting; the answer is the deployment being promoted (a copy when the
        environment's settings differ). Follow it with `wait_until_promoted`."""
        return await self._call(
            _ops.promote(
                chain_id,
                environment,
                deployment_id,
                scale_down_previous_deployment=scale_down_previous_deployment,
            )
        )

    async def update_autoscaling(
        self,
        chain_id: str,
        environment: str,
        settings: Mapping[str, UpdateAutoscalingSettingsV1 | Mapping[str, Any]],
    ) -> UpdateAutoscalingSettingsResponseV1:
        """`settings` maps chainlet names to the autoscaling fields to change."""
        return await self._call(_ops.update_autoscaling(chain_id, environment, settings))

    async def update_instance_types(
        self, chain_id: str, environment: str, instance_types: Mapping[str, str]
    ) -> UpdateChainletEnvironmentInstanceTypeResponseV1:
        """`instance_types` maps chainlet names to instance type ids, e.g. {"RandInt": "2x8"};
        when that changes anything, the answer carries the new deployment being promoted."""
        return await self._call(_ops.update_instance_types(chain_id, environment, instance_types))

    async def wait_until_promoted(
        self,
        chain_id: str,
        environment: str,
        *,
        deployment_id: str | None = None,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        on_update: Callable[[ChainEnvironmentV1], None] | None = None,
    ) -> ChainEnvironmentV1:
        """Polls the environment until `deployment_id` (default: its candidate at the first
        look) is its current deployment, and returns the environment then.

        Raises `PromotionFailed` when the deployment fails or stops being the candidate
        without becoming current, `PromotionTimeout` when `timeout` seconds pass first.
        `on_update` is called with every environment seen, for progress displays.
        """
        watch = PromotionWatch(chain_id, environment, deployment_id, timeout)
        while True:
            try:
                env = await self.get(chain_id, environment)
            except RateLimited as exc:
                # A poll told to slow down waits as long as it is told, then looks again.
                if watch.deadline.passed():
                    raise watch.timed_out() from exc
                await asyncio.sleep(watch.deadline.sleep_for(backoff(exc, poll_interval)))
                continue
            if on_update is not None:
                on_update(env)
            step = watch.observe(env)
            if step is Step.DONE:
                return env
            if step is Step.LEFT:
                assert watch.deployment_id is not None
                try:
                    deployment = await self._client.deployments.get(chain_id, watch.deployment_id)
                except NotFound:
                    raise watch.left(None) from None
                raise watch.left(deployment)
            if watch.deadline.passed():
                raise watch.timed_out()
            await asyncio.sleep(watch.deadline.sleep_for(poll_interval))


class InstanceTypes(_Resource):
    async def list(self) -> InstanceTypesV1:
        return await self._call(_ops.list_instance_types())

    async def prices(self) -> InstanceTypePricesV1:
        return await self._call(_ops.list_instance_type_prices())


class Secrets(_Resource):
    """Workspace secrets; values can be written, never read back."""

    async def list(self) -> SecretsV1:
        return await self._call(_ops.list_secrets())

    async def upsert(self, name: str, value: str) -> SecretV1:
        return await self._call(_ops.upsert_secret(name, value))

    async def delete(self, name: str) -> SecretTombstoneV1:
        return await self._call(_ops.delete_secret(name))


class APIKeys(_Resource):
    async def list(self) -> APIKeysV1:
        return await self._call(_ops.list_api_keys())

    async def create(
        self,
        *,
        type: APIKeyCategory | str = APIKeyCategory.WORKSPACE_MANAGE_ALL,
        name: str | None = None,
        model_ids: Sequence[str] | None = None,
    ) -> APIKeyV1:
        """A new key; the answer is the only time its secret part is shown."""
        return await self._call(_ops.create_api_key(type=type, name=name, model_ids=model_ids))

    async def delete(self, prefix: str) -> APIKeyTombstoneV1:
        return await self._call(_ops.delete_api_key(prefix))


class WebhookSecrets(_Resource):
    """Secrets that sign async requests' webhooks; a value is shown only when created."""

    async def list(self) -> WebhookSecretsV1:
        return await self._call(_ops.list_webhook_secrets())

    async def create(self) -> CreatedWebhookSecretV1:
        """A new current secret (shown this once); the previous one signs for 24 more hours."""
        return await self._call(_ops.create_webhook_secret())


class AsyncClient:
    """An asyncio client of a chainyard server.

    `url` and `api_key` default to CHAINYARD_URL and CHAINYARD_API_KEY, then to
    http://127.0.0.1:8080 and no key. Use it as an async context manager, or await `close()`.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = _http.DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = _http.resolve_url(url)
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=_http.default_headers(_http.resolve_key(api_key), headers),
            timeout=timeout,
            transport=transport,
        )
        self.chains = Chains(self)
        self.deployments = Deployments(self)
        self.development = Development(self)
        self.environments = Environments(self)
        self.instance_types = InstanceTypes(self)
        self.secrets = Secrets(self)
        self.api_keys = APIKeys(self)
        self.webhook_secrets = WebhookSecrets(self)
        self.async_requests = AsyncRequests(self)

    async def _call(self, op: _ops.Op[T]) -> T:
        try:
            response = await self._http.request(op.method, op.path, **_http.request_kwargs(op))
        except httpx.HTTPError as exc:
            raise _http.connection_failed(exc, self.url) from exc
        return _http.finish(op, response)

    async def health(self) -> Any:
        """The server's `/healthz` answer (needs no key)."""
        return await self._call(_ops.health())

    async def wait_until_promoted(
        self,
        chain_id: str,
        environment: str,
        *,
        deployment_id: str | None = None,
        timeout: float | None = DEFAULT_WAIT_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        on_update: Callable[[ChainEnvironmentV1], None] | None = None,
    ) -> ChainEnvironmentV1:
        """Same as `environments.wait_until_promoted`."""
        return await self.environments.wait_until_promoted(
            chain_id,
            environment,
            deployment_id=deployment_id,
            timeout=timeout,
            poll_interval=poll_interval,
            on_update=on_update,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
