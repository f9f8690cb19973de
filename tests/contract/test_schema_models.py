"""Our wire models against Baseten's published management spec, and request parsing rules.

Which JSON-schema mode is compared: both. The spec was generated from pydantic models in
validation style: a field with a default is *not* in ``required`` even on responses
(``DeactivateResponseV1.success``, ``ChainEnvironmentV1.candidate_deployment``). Pydantic's
validation-mode schema follows the same rule, and so does its serialization-mode schema as long as
``json_schema_serialization_defaults_required`` stays off (the default), so required-ness can be
compared one to one in either mode. Checking both modes also catches a serializer that would
change a field's shape on the way out (what FastAPI documents for responses).
"""

from __future__ import annotations

import copy
import enum
import json
from functools import cache
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from chainyard import schemas
from chainyard.schemas import (
    AuditLogEntryV1,
    ChainletManifest,
    ComputeSpec,
    CreateAPIKeyRequestV1,
    CreateChainEnvironmentRequestV1,
    DeployManifest,
    PromoteToChainEnvironmentRequestV1,
    SecretsV1,
    SecretTombstoneV1,
    SecretV1,
    UpdateAutoscalingSettingsResponseV1,
    UpdateAutoscalingSettingsV1,
    UpdateChainletEnvironmentAutoscalingSettingsRequestV1,
    UpdateChainletEnvironmentInstanceTypeRequestV1,
    UpdateChainletEnvironmentInstanceTypeResponseV1,
    UpdatePromotionSettingsV1,
    UpsertSecretRequestV1,
)

from .spec_compat import (
    ENVIRONMENTS_QUIRK_SCHEMA,
    Schema,
    compare_openapi,
    compare_schemas,
    load_reference_spec,
)

REF = "#/components/schemas/{model}"

MODELED = [
    "ChainV1",
    "ChainsV1",
    "ChainTombstoneV1",
    "ChainDeploymentV1",
    "ChainletV1",
    "ChainDeploymentsV1",
    "ChainDeploymentTombstoneV1",
    "DeactivateResponseV1",
    "ChainEnvironmentV1",
    "PromotionSettingsV1",
    "UpdatePromotionSettingsV1",
    "RollingDeployConfigV1",
    "UpdateRollingDeployConfigV1",
    "RollingDeployStrategyV1",
    "PromotionCleanupStrategyV1",
    "CreateChainEnvironmentRequestV1",
    "UpdateChainEnvironmentRequestV1",
    "UpdateChainEnvironmentResponseV1",
    "PromoteToChainEnvironmentRequestV1",
    "AutoscalingSettingsV1",
    "UpdateAutoscalingSettingsV1",
    "ChainletEnvironmentSettingsV1",
    "ChainletEnvironmentSettingsRequestV1",
    "ChainletEnvironmentAutoscalingSettingsUpdateV1",
    "UpdateChainletEnvironmentAutoscalingSettingsRequestV1",
    "UpdateAutoscalingSettingsResponseV1",
    "UpdateAutoscalingSettingsStatusV1",
    "ChainletEnvironmentInstanceTypeUpdateV1",
    "UpdateChainletEnvironmentInstanceTypeRequestV1",
    "UpdateChainletEnvironmentInstanceTypeResponseV1",
    "DeploymentStatusV1",
    "InstanceTypeV1",
    "InstanceTypesV1",
    "InstanceTypeWithPriceV1",
    "InstanceTypePricesV1",
    "SecretV1",
    "SecretsV1",
    "SecretTombstoneV1",
    "UpsertSecretRequestV1",
    "APIKeyCategory",
    "APIKeyInfoV1",
    "APIKeyOwnerV1",
    "APIKeysV1",
    "APIKeyV1",
    "APIKeyTombstoneV1",
    "CreateAPIKeyRequestV1",
    "LogLevelV1",
    "LogV1",
    "GetLogsResponseV1",
    "SortOrderV1",
    "AuditLogEntryV1",
    "ListAuditLogsResponseV1",
    "PaginationResponseV1",
    "AuditLogActorV1",
    "AuditLogActorTypeV1",
    "AuditLogSourceV1",
    "AuditLogSortDirectionV1",
    "AuditLogEventTypeV1",
    "AuditLogEventTypeGroupV1",
    "AuditLogApiKeyTypeV1",
    "AuditLogEventChainDeployedV1",
    "AuditLogEventChainDeploymentActivatedV1",
    "AuditLogEventChainDeploymentDeactivatedV1",
    "AuditLogEventChainDeploymentPromotedV1",
    "AuditLogEventChainletAutoscalingSettingsChangedV1",
    "AuditLogEventChainletInstanceTypeChangedV1",
    "AuditLogEventChainDeploymentDeletedV1",
    "AuditLogEventChainDeletedV1",
    "AuditLogEventChainEnvironmentCreatedV1",
    "AuditLogEventChainEnvironmentUpdatedV1",
    "AuditLogEventSecretUpdatedV1",
    "AuditLogEventSecretDeletedV1",
    "AuditLogEventApiKeyCreatedV1",
    "AuditLogEventApiKeyDeletedV1",
    "AuditLogEventWebhookSigningSecretCreatedV1",
    "AuditLogEventWebhookSigningSecretRotatedV1",
    "AuditLogEventAutoscalingSettingsV1",
]
MODES: tuple[JsonSchemaMode, ...] = ("validation", "serialization")


@pytest.fixture(scope="module")
def spec() -> Schema:
    loaded = load_reference_spec()
    return loaded


def _public(name: str) -> Any:
    return getattr(schemas, name)


@cache
def our_components(mode: JsonSchemaMode) -> Schema:
    """Our public models and enums as an OpenAPI-like document."""
    exported = [_public(n) for n in schemas.__all__]
    models = [m for m in exported if isinstance(m, type) and issubclass(m, BaseModel)]
    _, top = models_json_schema([(m, mode) for m in models], ref_template=REF)
    components: Schema = dict(top["$defs"])
    # Enums only used as query parameters never show up inside a model's $defs.
    for item in exported:
        if isinstance(item, type) and issubclass(item, enum.Enum):
            components.setdefault(item.__name__, TypeAdapter(item).json_schema(mode=mode))
    return {"components": {"schemas": components}}


def _ref(name: str) -> Schema:
    return {"$ref": REF.format(model=name)}


def _problems(spec: Schema, name: str, ours: Schema, our_name: str | None = None) -> list[str]:
    return compare_schemas(spec, _ref(name), ours, _ref(our_name or name), name)


# --------------------------------------------------------------------------------------------
# our models against the spec


def test_every_modeled_component_is_exported_and_in_the_spec(spec: Schema) -> None:
    spec_names = set(spec["components"]["schemas"])
    assert sorted(set(MODELED) - spec_names) == []
    assert sorted(set(MODELED) - set(schemas.__all__)) == []
    # A new export named like a spec component must be added to MODELED to be checked.
    assert sorted((set(schemas.__all__) & spec_names) - set(MODELED)) == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", MODELED)
def test_model_matches_spec_component(spec: Schema, name: str, mode: JsonSchemaMode) -> None:
    ours = our_components(mode)
    assert name in ours["components"]["schemas"]
    assert _problems(spec, name, ours) == []


@pytest.mark.parametrize("mode", MODES)
def test_chain_environments_list_matches_corrected_spec(spec: Schema, mode: JsonSchemaMode) -> None:
    ours = our_components(mode)
    problems = compare_schemas(
        spec, ENVIRONMENTS_QUIRK_SCHEMA, ours, _ref("ChainEnvironmentsV1"), "ChainEnvironmentsV1"
    )
    assert problems == []


def _openapi_like_ours(spec: Schema, mode: JsonSchemaMode) -> Schema:
    """An OpenAPI document with the spec's operations, answered with our models.

    Path parameters are renamed on purpose: the comparison must not care about their names.
    """
    paths: Schema = {}
    for path, item in spec["paths"].items():
        our_item: Schema = {}
        for method, op in item.items():
            if method == "parameters":
                continue
            our_op: Schema = {}
            if "requestBody" in op:
                our_op["requestBody"] = copy.deepcopy(op["requestBody"])
            response = copy.deepcopy(op["responses"]["200"])
            schema = response["content"]["application/json"]["schema"]
            if schema.get("$ref", "").endswith("/EnvironmentsV1"):
                schema["$ref"] = REF.format(model="ChainEnvironmentsV1")
            our_op["responses"] = {"200": response}
            our_item[method] = our_op
        paths[path.replace("{chain_id}", "{id}")] = our_item
    return {"paths": paths, **our_components(mode)}


@pytest.mark.parametrize("mode", MODES)
def test_compare_openapi_accepts_our_models_on_every_operation(
    spec: Schema, mode: JsonSchemaMode
) -> None:
    assert compare_openapi(spec, _openapi_like_ours(spec, mode), ("/v1/",)) == []


def test_compare_openapi_reports_missing_and_mismatched_operations(spec: Schema) -> None:
    ours = copy.deepcopy(_openapi_like_ours(spec, "serialization"))
    del ours["paths"]["/v1/secrets/{secret_name}"]
    del ours["paths"]["/v1/chains"]["get"]
    promote = ours["paths"]["/v1/chains/{id}/environments/{env_name}/promote"]["post"]
    promote["responses"]["200"]["content"]["application/json"]["schema"] = _ref("ChainV1")
    deactivate = "/v1/chains/{id}/deployments/{chain_deployment_id}/deactivate"
    ours["paths"][deactivate]["post"]["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": _ref("UpsertSecretRequestV1")}},
    }

    problems = compare_openapi(spec, ours, ("/v1/",))

    assert "/v1/secrets/{secret_name}: path missing from ours" in problems
    assert "GET /v1/chains: operation missing from ours" in problems
    promote_where = "POST /v1/chains/{chain_id}/environments/{env_name}/promote 200"
    assert f"{promote_where}.chainlets: missing from ours" in problems
    assert any("requires a request body the spec does not define" in p for p in problems)
    # The prefix filter limits the check to the paths asked for.
    assert compare_openapi(spec, ours, ("/v1/instance_types", "/v1/api_keys")) == []


def test_compare_openapi_on_a_fastapi_app(spec: Schema) -> None:
    # Routes built the way the API layer builds them, with a path parameter named differently.
    app = FastAPI()

    @app.get("/v1/secrets", response_model=SecretsV1)
    def list_secrets() -> Any: ...

    @app.post("/v1/secrets", response_model=SecretV1)
    def upsert_secret(body: UpsertSecretRequestV1) -> Any: ...

    @app.delete("/v1/secrets/{name}", response_model=SecretTombstoneV1)
    def delete_secret(name: str) -> Any: ...

    base = "/v1/chains/{chain_id}/environments/{env_name}/chainlet_settings"

    @app.patch(f"{base}/autoscaling_settings", response_model=UpdateAutoscalingSettingsResponseV1)
    def update_autoscaling(
        chain_id: str, env_name: str, body: UpdateChainletEnvironmentAutoscalingSettingsRequestV1
    ) -> Any: ...

    @app.post(
        f"{base}/instance_types/update",
        response_model=UpdateChainletEnvironmentInstanceTypeResponseV1,
    )
    def update_instance_types(
        chain_id: str, env_name: str, body: UpdateChainletEnvironmentInstanceTypeRequestV1
    ) -> Any: ...

    ours = json.loads(json.dumps(app.openapi()))
    assert compare_openapi(spec, ours, ("/v1/secrets", base)) == []
    assert compare_openapi(spec, ours, ("/v1/api_keys",)) == [
        "/v1/api_keys: path missing from ours",
        "/v1/api_keys/{api_key_prefix}: path missing from ours",
    ]


def test_compare_openapi_query_parameters(spec: Schema) -> None:
    ours = copy.deepcopy(_openapi_like_ours(spec, "serialization"))
    logs = "/v1/chains/{id}/deployments/{chain_deployment_id}/chainlets/{chainlet_id}/logs"
    ours["paths"][logs]["get"]["parameters"] = [
        {"name": "limit", "in": "query", "required": True, "schema": {"type": "integer"}}
    ]
    problems = compare_openapi(spec, ours, (logs.replace("{id}", "{chain_id}"),))
    assert problems == []
    problems = compare_openapi(
        spec, ours, (logs.replace("{id}", "{chain_id}"),), check_query_params=True
    )
    assert any("'limit' is required by ours" in p for p in problems)
    assert any("'search_pattern' missing from ours" in p for p in problems)


# --------------------------------------------------------------------------------------------
# the comparator finds real differences


def _ours_from(*models: type[BaseModel]) -> Schema:
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    return {"components": {"schemas": top["$defs"]}}


def test_comparator_reports_a_wrong_model(spec: Schema) -> None:
    class ChainV1(BaseModel):
        id: str
        created_at: str
        name: str | None
        deployments_count: float = 0

    problems = _problems(spec, "ChainV1", _ours_from(ChainV1))
    assert problems == [
        "ChainV1.created_at: format: spec 'date-time', ours None",
        "ChainV1.name: nullable: spec False, ours True",
        "ChainV1.deployments_count: required: spec True, ours False",
        "ChainV1.deployments_count: type: spec 'integer', ours 'number'",
        "ChainV1.team_name: missing from ours",
    ]


def test_comparator_reports_problems_in_nested_objects_and_array_items(spec: Schema) -> None:
    ours = copy.deepcopy(our_components("validation"))
    components = ours["components"]["schemas"]
    components["ChainletV1"]["properties"]["active_replica_count"] = {"type": "string"}
    components["DeploymentStatusV1"]["enum"].remove("WAKING_UP")

    problems = _problems(spec, "ChainDeploymentsV1", ours)

    assert problems == [
        "ChainDeploymentsV1.deployments[].chainlets[].active_replica_count: "
        "type: spec 'integer', ours 'string'",
        "ChainDeploymentsV1.deployments[].chainlets[].status: "
        "enum values missing from ours: ['WAKING_UP']",
        "ChainDeploymentsV1.deployments[].status: enum values missing from ours: ['WAKING_UP']",
    ]


def test_comparator_reports_items_that_are_not_arrays_and_defaults(spec: Schema) -> None:
    wrong: Schema = {
        "type": "object",
        "properties": {
            "success": {"type": "boolean", "default": False},
        },
    }
    problems = compare_schemas(spec, _ref("DeactivateResponseV1"), {}, wrong, "Deactivate")
    assert problems == ["Deactivate.success: default: spec True, ours False"]

    not_a_list: Schema = {
        "type": "object",
        "properties": {"chains": {"type": "object"}},
        "required": ["chains"],
    }
    problems = compare_schemas(spec, _ref("ChainsV1"), {}, not_a_list, "ChainsV1")
    assert problems == ["ChainsV1.chains: type: spec 'array', ours 'object'"]


def test_comparator_reports_open_objects_where_the_spec_closes_them(spec: Schema) -> None:
    ours = copy.deepcopy(our_components("validation"))
    del ours["components"]["schemas"]["UpdateAutoscalingSettingsV1"]["additionalProperties"]
    assert _problems(spec, "UpdateAutoscalingSettingsV1", ours) == [
        "UpdateAutoscalingSettingsV1: spec rejects unknown properties, ours accepts them"
    ]


def test_comparator_union_accepts_a_subset_but_not_a_stranger(spec: Schema) -> None:
    class Stranger(BaseModel):
        event_type: Literal["CHAIN_DELETED"]
        chain_id: str

    class Entry(BaseModel):
        id: str
        created: str
        event_type: schemas.AuditLogEventTypeV1
        event_data: schemas.AuditLogEventSecretDeletedV1 | Stranger
        actor: schemas.AuditLogActorV1

    problems = _problems(spec, "AuditLogEntryV1", _ours_from(Entry), "Entry")
    assert "AuditLogEntryV1.event_data: our alternative Stranger matches none of the spec's" in (
        problems
    )
    # The known member on its own is a valid subset of the spec's union.
    assert not any("AuditLogEventSecretDeletedV1" in p for p in problems)


# --------------------------------------------------------------------------------------------
# request parsing


def test_update_autoscaling_settings_rejects_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        UpdateAutoscalingSettingsV1.model_validate({"min_replica": 1, "max_replicas": 2})
    with pytest.raises(ValidationError):
        UpdateAutoscalingSettingsV1.model_validate_json('{"min_replica": 1, "max_replicas": 2}')


@pytest.mark.parametrize(
    ("model", "payload"),
    [
        (UpdateAutoscalingSettingsV1, {"min_replica": "1"}),
        (UpdateAutoscalingSettingsV1, {"max_scale_down_rate": "20"}),
        (UpdateAutoscalingSettingsV1, {"concurrency_target": 1.5}),
        (UpdatePromotionSettingsV1, {"ramp_up_duration_seconds": "600"}),
        (UpdatePromotionSettingsV1, {"rolling_deploy_config": {"max_surge_percent": "25"}}),
        (UpdatePromotionSettingsV1, {"ramp_up_while_promoting": "true"}),
        (
            PromoteToChainEnvironmentRequestV1,
            {"deployment_id": "d", "scale_down_previous_deployment": 1},
        ),
        (ComputeSpec, {"gpu_count": "1"}),
        (ComputeSpec, {"predict_concurrency": "4"}),
    ],
)
def test_request_numbers_and_booleans_are_not_coerced_from_strings(
    model: type[BaseModel], payload: dict[str, Any]
) -> None:
    # FastAPI validates the decoded body as Python data; clients send JSON. Check both paths.
    with pytest.raises(ValidationError):
        model.model_validate(payload)
    with pytest.raises(ValidationError):
        model.model_validate_json(json.dumps(payload))


def test_request_bounds_are_enforced() -> None:
    with pytest.raises(ValidationError):
        UpdateAutoscalingSettingsV1.model_validate({"max_scale_down_rate": 51})
    assert UpdateAutoscalingSettingsV1.model_validate(
        {"max_scale_down_rate": 50}
    ).max_scale_down_rate
    with pytest.raises(ValidationError):
        ComputeSpec.model_validate({"gpu_count": -1})
    with pytest.raises(ValidationError):
        ComputeSpec.model_validate({"predict_concurrency": 0})


def test_request_enums_parse_from_strings_in_both_paths() -> None:
    payload = {"name": "k", "type": "WORKSPACE_INVOKE"}
    for parsed in (
        CreateAPIKeyRequestV1.model_validate(payload),
        CreateAPIKeyRequestV1.model_validate_json(json.dumps(payload)),
    ):
        assert parsed.type is schemas.APIKeyCategory.WORKSPACE_INVOKE
    settings = {"promotion_cleanup_strategy": "KEEP", "rolling_deploy_config": {}}
    parsed_settings = UpdatePromotionSettingsV1.model_validate(settings)
    assert parsed_settings.promotion_cleanup_strategy is schemas.PromotionCleanupStrategyV1.KEEP
    with pytest.raises(ValidationError):
        CreateAPIKeyRequestV1.model_validate({"type": "NOT_A_CATEGORY"})


def test_open_request_models_ignore_unknown_keys() -> None:
    body = CreateChainEnvironmentRequestV1.model_validate(
        {"name": "staging", "future_field": 1, "chainlet_settings": [{"chainlet_name": "A"}]}
    )
    assert body.chainlet_settings is not None
    assert body.chainlet_settings[0].instance_type_id == "1x2"
    assert PromoteToChainEnvironmentRequestV1.model_validate(
        {"deployment_id": "d"}
    ).scale_down_previous_deployment


def test_deploy_manifest_needs_exactly_one_chain_reference() -> None:
    chainlets = [{"name": "Entry", "is_entrypoint": True}]
    with pytest.raises(ValidationError, match="exactly one of chain_name and chain_id"):
        DeployManifest.model_validate({"chainlets": chainlets})
    with pytest.raises(ValidationError, match="exactly one of chain_name and chain_id"):
        DeployManifest.model_validate({"chain_name": "c", "chain_id": "x", "chainlets": chainlets})
    assert (
        DeployManifest.model_validate({"chain_name": "c", "chainlets": chainlets}).chain_id is None
    )
    assert (
        DeployManifest.model_validate({"chain_id": "x", "chainlets": chainlets}).chain_name is None
    )


@pytest.mark.parametrize("bad", ["", "-lead", "has space", "a/b", "x" * 101, "new\nline", "ü"])
def test_deploy_manifest_rejects_bad_names(bad: str) -> None:
    with pytest.raises(ValidationError, match="invalid name"):
        DeployManifest.model_validate({"chain_name": bad, "chainlets": []})
    with pytest.raises(ValidationError, match="invalid name"):
        ChainletManifest.model_validate({"name": bad})


def test_deploy_manifest_is_closed_and_has_defaults() -> None:
    with pytest.raises(ValidationError):
        DeployManifest.model_validate({"chain_name": "c", "chainlets": [], "enviroment": "prod"})
    with pytest.raises(ValidationError):
        ChainletManifest.model_validate({"name": "A", "compute": {"gpus": 1}})
    chainlet = ChainletManifest.model_validate({"name": "A.b_c-1"})
    assert chainlet.compute == ComputeSpec(
        cpu_count=1, memory="2Gi", gpu=None, gpu_count=0, predict_concurrency=1
    )
    assert (chainlet.dependencies, chainlet.pip_requirements, chainlet.secret_keys) == ([], [], [])
    assert chainlet.instance_type_id is None
    assert chainlet.is_entrypoint is False
    for cpu in (2, 0.5, "500m"):
        assert ComputeSpec.model_validate_json(json.dumps({"cpu_count": cpu})).cpu_count == cpu


def _entry(event_data: dict[str, Any], event_type: str | None = None) -> dict[str, Any]:
    return {
        "id": "e1",
        "created": "2024-05-01T12:00:00Z",
        "event_type": event_type or event_data["event_type"],
        "event_data": event_data,
        "actor": {"type": "API_KEY", "api_key_prefix": "abc"},
    }


def test_audit_entry_dispatches_on_event_type() -> None:
    data = {"event_type": "SECRET_DELETED", "secret_id": "s1", "secret_name": "hf"}
    entry = AuditLogEntryV1.model_validate(_entry(data))
    assert isinstance(entry.event_data, schemas.AuditLogEventSecretDeletedV1)
    assert entry.model_dump(mode="json")["event_data"] == data

    with pytest.raises(ValidationError, match="does not match"):
        AuditLogEntryV1.model_validate(_entry(data, event_type="SECRET_UPDATED"))
    with pytest.raises(ValidationError):
        AuditLogEntryV1.model_validate(_entry({**data, "extra": 1}))
    with pytest.raises(ValidationError):
        AuditLogEntryV1.model_validate(_entry({**data, "event_type": "MODEL_DELETED"}))
