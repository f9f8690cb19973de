"""One request description per endpoint, shared by the sync and the async client.

Building a request (path, query, body, how to read the answer) happens here once; the clients
only send it. That keeps `Client` and `AsyncClient` from drifting apart.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

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
    ChainletEnvironmentInstanceTypeUpdateV1,
    ChainletEnvironmentSettingsRequestV1,
    ChainsV1,
    ChainTombstoneV1,
    ChainV1,
    CreateAPIKeyRequestV1,
    CreatedWebhookSecretV1,
    DeactivateResponseV1,
    DeployManifest,
    DeployResponse,
    GetLogsResponseV1,
    InstanceTypePricesV1,
    InstanceTypesV1,
    ListAuditLogsResponseV1,
    LogLevelV1,
    Patch,
    Patches,
    PromoteToChainEnvironmentRequestV1,
    SecretsV1,
    SecretTombstoneV1,
    SecretV1,
    SortOrderV1,
    UpdateAutoscalingSettingsResponseV1,
    UpdateAutoscalingSettingsV1,
    UpdateChainEnvironmentResponseV1,
    UpdateChainletEnvironmentInstanceTypeRequestV1,
    UpdateChainletEnvironmentInstanceTypeResponseV1,
    UpdatePromotionSettingsV1,
    UpsertSecretRequestV1,
    WebhookSecretsV1,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# Query values: a list becomes a repeated parameter (`?a=1&a=2`), None is left out.
QueryValue = str | int | float | bool | None | Sequence[str]


@dataclasses.dataclass(frozen=True)
class Op(Generic[T]):
    """An HTTP request and how to turn its 2xx answer into a `T`."""

    method: str
    path: str
    decode: Callable[[httpx.Response], T]
    params: Mapping[str, QueryValue] = dataclasses.field(default_factory=dict)
    json: Any = None
    # Multipart deploys: form fields and files, sent instead of `json`.
    data: Mapping[str, str] | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    # A JSON body already encoded (inference inputs, where `null` is a value, not "no body").
    content: bytes | None = None
    # Seconds for this request only; None means the client's default.
    timeout: float | None = None

    def query(self) -> list[tuple[str, str | int | float | bool]]:
        out: list[tuple[str, str | int | float | bool]] = []
        for key, value in self.params.items():
            if value is None:
                continue
            if isinstance(value, str | int | float | bool):
                out.append((key, value))
            else:
                out.extend((key, item) for item in value)
        return out


def _seg(value: str) -> str:
    """One path segment: ids and names are escaped so that '/' or '?' cannot change the path."""
    if not value:
        raise ValueError("an id or name in the path must not be empty")
    return quote(value, safe="")


def model(cls: type[M]) -> Callable[[httpx.Response], M]:
    def decode(response: httpx.Response) -> M:
        return cls.model_validate_json(response.content)

    return decode


def any_json(response: httpx.Response) -> Any:
    """Inference answers are whatever the chain's entrypoint returns (any JSON value)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _dump(value: BaseModel) -> dict[str, Any]:
    # exclude_unset: a partial update sends only what the caller set, so the server keeps the rest.
    return value.model_dump(mode="json", exclude_unset=True)


def _coerce(cls: type[M], value: M | Mapping[str, Any]) -> M:
    """Accepts a wire model or a plain mapping; a mapping is checked here, before sending."""
    if isinstance(value, cls):
        return value
    return cls.model_validate(value)


# -- chains ------------------------------------------------------------------------------------


def list_chains(*, limit: int | None, after: str | None) -> Op[ChainsV1]:
    return Op("GET", "/v1/chains", model(ChainsV1), params={"limit": limit, "after": after})


def get_chain(chain_id: str) -> Op[ChainV1]:
    return Op("GET", f"/v1/chains/{_seg(chain_id)}", model(ChainV1))


def delete_chain(chain_id: str) -> Op[ChainTombstoneV1]:
    return Op("DELETE", f"/v1/chains/{_seg(chain_id)}", model(ChainTombstoneV1))


def deploy(
    manifest: DeployManifest | Mapping[str, Any],
    *,
    source: bytes | None,
    timeout: float | None,
) -> Op[DeployResponse]:
    body = _dump(_coerce(DeployManifest, manifest))
    if source is None:
        return Op("POST", "/v1/chains/deploy", model(DeployResponse), json=body, timeout=timeout)
    return Op(
        "POST",
        "/v1/chains/deploy",
        model(DeployResponse),
        data={"manifest": json.dumps(body)},
        files={"source": ("source.tar.gz", source, "application/gzip")},
        timeout=timeout,
    )


def audit_logs(
    chain_id: str,
    *,
    cursor: str | None,
    limit: int | None,
    direction: AuditLogSortDirectionV1 | str | None,
    search: str | None,
    event_type_groups: Iterable[AuditLogEventTypeGroupV1 | str] | None,
    chain_deployment_ids: Iterable[str] | None,
    environment_names: Iterable[str] | None,
    sources: Iterable[AuditLogSourceV1 | str] | None,
    start_epoch_millis: int | None,
    end_epoch_millis: int | None,
) -> Op[ListAuditLogsResponseV1]:
    params: dict[str, QueryValue] = {
        "cursor": cursor,
        "limit": limit,
        "direction": str(direction) if direction is not None else None,
        "search": search,
        "event_type_groups": _strs(event_type_groups),
        "chain_deployment_ids": _strs(chain_deployment_ids),
        "environment_names": _strs(environment_names),
        "sources": _strs(sources),
        "start_epoch_millis": start_epoch_millis,
        "end_epoch_millis": end_epoch_millis,
    }
    path = f"/v1/chains/{_seg(chain_id)}/audit_logs"
    return Op("GET", path, model(ListAuditLogsResponseV1), params=params)


def _strs(values: Iterable[object] | None) -> list[str] | None:
    return None if values is None else [str(v) for v in values]


# -- deployments ---------------------------------------------------------------------------------


def _deployment_path(chain_id: str, deployment_id: str) -> str:
    return f"/v1/chains/{_seg(chain_id)}/deployments/{_seg(deployment_id)}"


def list_deployments(
    chain_id: str, *, limit: int | None, before: str | None
) -> Op[ChainDeploymentsV1]:
    return Op(
        "GET",
        f"/v1/chains/{_seg(chain_id)}/deployments",
        model(ChainDeploymentsV1),
        params={"limit": limit, "before": before},
    )


def get_deployment(chain_id: str, deployment_id: str) -> Op[ChainDeploymentV1]:
    return Op("GET", _deployment_path(chain_id, deployment_id), model(ChainDeploymentV1))


def delete_deployment(chain_id: str, deployment_id: str) -> Op[ChainDeploymentTombstoneV1]:
    path = _deployment_path(chain_id, deployment_id)
    return Op("DELETE", path, model(ChainDeploymentTombstoneV1))


def activate_deployment(chain_id: str, deployment_id: str) -> Op[ActivateResponseV1]:
    path = _deployment_path(chain_id, deployment_id) + "/activate"
    return Op("POST", path, model(ActivateResponseV1))


def deactivate_deployment(chain_id: str, deployment_id: str) -> Op[DeactivateResponseV1]:
    path = _deployment_path(chain_id, deployment_id) + "/deactivate"
    return Op("POST", path, model(DeactivateResponseV1))


def chainlet_logs(
    chain_id: str,
    deployment_id: str,
    chainlet_id: str,
    *,
    start_epoch_millis: int | None,
    end_epoch_millis: int | None,
    direction: SortOrderV1 | str | None,
    limit: int | None,
    min_level: LogLevelV1 | str | None,
    replica: str | None,
    request_id: str | None,
    search_pattern: str | None,
    includes: Iterable[str] | None,
    excludes: Iterable[str] | None,
) -> Op[GetLogsResponseV1]:
    path = f"{_deployment_path(chain_id, deployment_id)}/chainlets/{_seg(chainlet_id)}/logs"
    params: dict[str, QueryValue] = {
        "start_epoch_millis": start_epoch_millis,
        "end_epoch_millis": end_epoch_millis,
        "direction": str(direction) if direction is not None else None,
        "limit": limit,
        "min_level": str(min_level) if min_level is not None else None,
        "replica": replica,
        "request_id": request_id,
        "search_pattern": search_pattern,
        "includes": _strs(includes),
        "excludes": _strs(excludes),
    }
    return Op("GET", path, model(GetLogsResponseV1), params=params)


# -- development deployment ----------------------------------------------------------------------


def _development_path(chain_id: str) -> str:
    return f"/v1/chains/{_seg(chain_id)}/development"


def push_development(
    manifest: DeployManifest | Mapping[str, Any],
    *,
    source: bytes | None,
    timeout: float | None,
) -> Op[DeployResponse]:
    """A deploy whose manifest says `development`: the chain's development deployment."""
    body = _dump(manifest) if isinstance(manifest, BaseModel) else dict(manifest)
    body["development"] = True
    return deploy(body, source=source, timeout=timeout)


def patch_development(
    chain_id: str,
    *,
    base_digest: str | None,
    files: bytes | None,
    deleted: Sequence[str],
    manifest: DeployManifest | Mapping[str, Any] | None,
    chainlets: Sequence[str] | None,
    timeout: float | None,
) -> Op[Patch]:
    # A mapping goes as it is: a patch's manifest may leave the chain out (the path names it).
    sent = _dump(manifest) if isinstance(manifest, BaseModel) else manifest
    body = {
        "base_digest": base_digest,
        "deleted": list(deleted),
        "manifest": None if sent is None else dict(sent),
        "chainlets": None if chainlets is None else list(chainlets),
    }
    path = f"{_development_path(chain_id)}/patch"
    if files is None:
        return Op("POST", path, model(Patch), json=body, timeout=timeout)
    return Op(
        "POST",
        path,
        model(Patch),
        data={"patch": json.dumps(body)},
        files={"files": ("files.tar.gz", files, "application/gzip")},
        timeout=timeout,
    )


def list_patches(chain_id: str, *, limit: int | None) -> Op[list[Patch]]:
    def decode(response: httpx.Response) -> list[Patch]:
        return Patches.model_validate_json(response.content).patches

    return Op("GET", f"{_development_path(chain_id)}/patches", decode, params={"limit": limit})


def get_patch(chain_id: str, patch_id: str) -> Op[Patch]:
    return Op("GET", f"{_development_path(chain_id)}/patches/{_seg(patch_id)}", model(Patch))


# -- environments --------------------------------------------------------------------------------


def _env_path(chain_id: str, environment: str) -> str:
    return f"/v1/chains/{_seg(chain_id)}/environments/{_seg(environment)}"


def list_environments(chain_id: str) -> Op[ChainEnvironmentsV1]:
    path = f"/v1/chains/{_seg(chain_id)}/environments"
    return Op("GET", path, model(ChainEnvironmentsV1))


def get_environment(chain_id: str, environment: str) -> Op[ChainEnvironmentV1]:
    return Op("GET", _env_path(chain_id, environment), model(ChainEnvironmentV1))


def create_environment(
    chain_id: str,
    name: str,
    *,
    promotion_settings: UpdatePromotionSettingsV1 | Mapping[str, Any] | None,
    chainlet_settings: Sequence[ChainletEnvironmentSettingsRequestV1 | Mapping[str, Any]] | None,
) -> Op[ChainEnvironmentV1]:
    body: dict[str, Any] = {"name": name}
    if promotion_settings is not None:
        body["promotion_settings"] = _dump(_coerce(UpdatePromotionSettingsV1, promotion_settings))
    if chainlet_settings is not None:
        body["chainlet_settings"] = [
            _dump(_coerce(ChainletEnvironmentSettingsRequestV1, c)) for c in chainlet_settings
        ]
    path = f"/v1/chains/{_seg(chain_id)}/environments"
    return Op("POST", path, model(ChainEnvironmentV1), json=body)


def update_environment(
    chain_id: str,
    environment: str,
    *,
    promotion_settings: UpdatePromotionSettingsV1 | Mapping[str, Any],
) -> Op[UpdateChainEnvironmentResponseV1]:
    body = {"promotion_settings": _dump(_coerce(UpdatePromotionSettingsV1, promotion_settings))}
    path = _env_path(chain_id, environment)
    return Op("PATCH", path, model(UpdateChainEnvironmentResponseV1), json=body)


def promote(
    chain_id: str, environment: str, deployment_id: str, *, scale_down_previous_deployment: bool
) -> Op[ChainDeploymentV1]:
    body = PromoteToChainEnvironmentRequestV1(
        deployment_id=deployment_id, scale_down_previous_deployment=scale_down_previous_deployment
    ).model_dump(mode="json")
    path = _env_path(chain_id, environment) + "/promote"
    return Op("POST", path, model(ChainDeploymentV1), json=body)


def update_autoscaling(
    chain_id: str,
    environment: str,
    settings: Mapping[str, UpdateAutoscalingSettingsV1 | Mapping[str, Any]],
) -> Op[UpdateAutoscalingSettingsResponseV1]:
    body = {
        "updates": [
            {
                "chainlet_name": name,
                "autoscaling_settings": _dump(_coerce(UpdateAutoscalingSettingsV1, value)),
            }
            for name, value in settings.items()
        ]
    }
    path = _env_path(chain_id, environment) + "/chainlet_settings/autoscaling_settings"
    return Op("PATCH", path, model(UpdateAutoscalingSettingsResponseV1), json=body)


def update_instance_types(
    chain_id: str, environment: str, instance_types: Mapping[str, str]
) -> Op[UpdateChainletEnvironmentInstanceTypeResponseV1]:
    request = UpdateChainletEnvironmentInstanceTypeRequestV1(
        updates=[
            ChainletEnvironmentInstanceTypeUpdateV1(chainlet_name=name, instance_type_id=type_id)
            for name, type_id in instance_types.items()
        ]
    )
    path = _env_path(chain_id, environment) + "/chainlet_settings/instance_types/update"
    return Op(
        "POST",
        path,
        model(UpdateChainletEnvironmentInstanceTypeResponseV1),
        json=request.model_dump(mode="json"),
    )


# -- catalogue, secrets, keys, webhook secrets -----------------------------------------------------


def list_instance_types() -> Op[InstanceTypesV1]:
    return Op("GET", "/v1/instance_types", model(InstanceTypesV1))


def list_instance_type_prices() -> Op[InstanceTypePricesV1]:
    return Op("GET", "/v1/instance_type_prices", model(InstanceTypePricesV1))


def list_secrets() -> Op[SecretsV1]:
    return Op("GET", "/v1/secrets", model(SecretsV1))


def upsert_secret(name: str, value: str) -> Op[SecretV1]:
    body = UpsertSecretRequestV1(name=name, value=value).model_dump(mode="json")
    return Op("POST", "/v1/secrets", model(SecretV1), json=body)


def delete_secret(name: str) -> Op[SecretTombstoneV1]:
    return Op("DELETE", f"/v1/secrets/{_seg(name)}", model(SecretTombstoneV1))


def list_api_keys() -> Op[APIKeysV1]:
    return Op("GET", "/v1/api_keys", model(APIKeysV1))


def create_api_key(
    *, type: APIKeyCategory | str, name: str | None, model_ids: Sequence[str] | None
) -> Op[APIKeyV1]:
    request = CreateAPIKeyRequestV1(
        type=APIKeyCategory(type), name=name, model_ids=None if model_ids is None else [*model_ids]
    )
    body = request.model_dump(mode="json", exclude_none=True)
    return Op("POST", "/v1/api_keys", model(APIKeyV1), json=body)


def delete_api_key(prefix: str) -> Op[APIKeyTombstoneV1]:
    return Op("DELETE", f"/v1/api_keys/{_seg(prefix)}", model(APIKeyTombstoneV1))


def list_webhook_secrets() -> Op[WebhookSecretsV1]:
    return Op("GET", "/v1/webhook_secrets", model(WebhookSecretsV1))


def create_webhook_secret() -> Op[CreatedWebhookSecretV1]:
    return Op("POST", "/v1/webhook_secrets", model(CreatedWebhookSecretV1))


def health() -> Op[Any]:
    return Op("GET", "/healthz", any_json)


# -- inference -------------------------------------------------------------------------------


def _inference_path(
    chain_id: str,
    action: str,
    environment: str | None,
    deployment_id: str | None,
    development: bool = False,
) -> str:
    if (environment is not None) + (deployment_id is not None) + development > 1:
        raise ValueError("give one of environment, deployment_id and development")
    base = f"/chains/{_seg(chain_id)}"
    if development:
        return f"{base}/development/{action}"
    if deployment_id is not None:
        return f"{base}/deployment/{_seg(deployment_id)}/{action}"
    if environment is None or environment == "production":
        return f"{base}/production/{action}"
    return f"{base}/environments/{_seg(environment)}/{action}"


def run_remote(
    chain_id: str,
    data: Any,
    *,
    environment: str | None,
    deployment_id: str | None,
    timeout: float | None,
    development: bool = False,
) -> Op[Any]:
    path = _inference_path(chain_id, "run_remote", environment, deployment_id, development)
    content = json.dumps(data).encode()
    return Op("POST", path, any_json, content=content, timeout=timeout)


def wake(
    chain_id: str,
    *,
    environment: str | None,
    deployment_id: str | None,
    development: bool = False,
) -> Op[None]:
    path = _inference_path(chain_id, "wake", environment, deployment_id, development)
    return Op("POST", path, lambda _response: None)
