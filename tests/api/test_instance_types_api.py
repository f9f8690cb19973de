"""/v1/instance_types and /v1/instance_type_prices, and an operator's catalogue file."""

from __future__ import annotations

import json
import pathlib
from typing import Any

from tests.contract import wire_facts
from tests.support.server import Api, hello_manifest

CPU_IDS = ["1x2", "1x4", "2x8", "4x16", "8x32", "16x64"]
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def _spec() -> dict[str, Any]:
    return wire_facts.load(wire_facts.MANAGEMENT)


def _problems(value: Any, schema: dict[str, Any], spec: dict[str, Any], where: str) -> list[str]:
    """A small JSON-schema check: $ref, anyOf, type, required, properties, items."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _problems(value, spec["components"]["schemas"][name], spec, where)
    if "anyOf" in schema:
        options = [_problems(value, option, spec, where) for option in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{where}: matches no anyOf option"]
    problems: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        allowed = _JSON_TYPES[kind]
        if not isinstance(value, allowed) or (kind != "boolean" and isinstance(value, bool)):
            return [f"{where}: expected {kind}, got {value!r}"]
    if isinstance(value, dict):
        for field in schema.get("required", []):
            if field not in value:
                problems.append(f"{where}: missing required {field!r}")
        for field, sub in schema.get("properties", {}).items():
            if field in value:
                problems += _problems(value[field], sub, spec, f"{where}.{field}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problems += _problems(item, schema["items"], spec, f"{where}[{i}]")
    return problems


def _response_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["paths"][path]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    return schema


def test_instance_types_list_cpu_and_gpu_types_in_the_spec_shape(api: Api) -> None:
    spec = _spec()
    response = api.get("/v1/instance_types")
    assert response.status_code == 200, response.text
    body = response.json()
    assert _problems(body, _response_schema(spec, "/v1/instance_types"), spec, "body") == []
    types = {it["id"]: it for it in body["instance_types"]}
    assert len(types) == len(body["instance_types"])  # no duplicate ids
    ids = list(types)
    assert ids[: len(CPU_IDS)] == CPU_IDS  # CPU-only types first, by size
    for cpu_id in CPU_IDS:
        vcpu, gib = (int(x) for x in cpu_id.split("x"))
        it = types[cpu_id]
        assert it["millicpu_limit"] == vcpu * 1000
        assert it["memory_limit_mib"] == gib * 1024
        assert it["gpu_count"] == 0
        assert it["gpu_type"] is None
        assert it["gpu_memory_limit_mib"] is None
    gpu = [it for it in body["instance_types"] if it["gpu_count"] > 0]
    assert {it["gpu_type"] for it in gpu} >= {"T4", "L4", "A10G", "A100", "H100"}
    for it in gpu:
        assert isinstance(it["gpu_type"], str) and it["gpu_type"]
        assert it["gpu_memory_limit_mib"] > 0
    assert types["A10G:2x24x96"]["gpu_count"] == 2
    assert types["H100:2x52x468"]["gpu_type"] == "H100"
    for it in body["instance_types"]:
        assert set(it) == {
            "id",
            "name",
            "memory_limit_mib",
            "millicpu_limit",
            "gpu_count",
            "gpu_type",
            "gpu_memory_limit_mib",
        }


def test_instance_type_prices_cover_every_type(api: Api) -> None:
    spec = _spec()
    response = api.get("/v1/instance_type_prices")
    assert response.status_code == 200, response.text
    body = response.json()
    assert _problems(body, _response_schema(spec, "/v1/instance_type_prices"), spec, "body") == []
    priced = {entry["instance_type"]["id"]: entry for entry in body["instance_types"]}
    listed = api.get("/v1/instance_types").json()["instance_types"]
    assert list(priced) == [it["id"] for it in listed]
    for entry in body["instance_types"]:
        assert set(entry) == {"instance_type", "price"}
        assert isinstance(entry["price"], int | float) and entry["price"] > 0
    assert [entry["instance_type"] for entry in body["instance_types"]] == listed
    # Bigger CPU machines cost more.
    cpu_prices = [priced[i]["price"] for i in CPU_IDS]
    assert cpu_prices == sorted(cpu_prices) and len(set(cpu_prices)) == len(cpu_prices)


def test_an_operator_file_extends_the_catalogue(
    api: Api, make_api: Any, tmp_path: pathlib.Path
) -> None:
    assert "MI300X:1x24x256" not in {
        it["id"] for it in api.get("/v1/instance_types").json()["instance_types"]
    }
    catalogue = tmp_path / "instance_types.json"
    catalogue.write_text(
        json.dumps(
            {
                "mode": "extend",
                "instance_types": [
                    {
                        "id": "MI300X:1x24x256",
                        "name": "MI300X, 24 vCPU, 256 GiB",
                        "memory_limit_mib": 256 * 1024,
                        "millicpu_limit": 24000,
                        "gpu_count": 1,
                        "gpu_type": "MI300X",
                        "gpu_memory_limit_mib": 192 * 1024,
                        "price_per_minute": 0.1,
                    },
                    {
                        "id": "1x2",  # an entry with a default's id replaces it
                        "memory_limit_mib": 2048,
                        "millicpu_limit": 1000,
                        "price_per_minute": 0.5,
                    },
                ],
            }
        )
    )
    custom = make_api(instance_types_file=catalogue)
    listed = {it["id"]: it for it in custom.get("/v1/instance_types").json()["instance_types"]}
    assert set(listed) >= set(CPU_IDS) | {"A10Gx4x16", "MI300X:1x24x256"}
    assert listed["MI300X:1x24x256"] == {
        "id": "MI300X:1x24x256",
        "name": "MI300X, 24 vCPU, 256 GiB",
        "memory_limit_mib": 262144,
        "millicpu_limit": 24000,
        "gpu_count": 1,
        "gpu_type": "MI300X",
        "gpu_memory_limit_mib": 196608,
    }
    prices = {
        e["instance_type"]["id"]: e["price"]
        for e in custom.get("/v1/instance_type_prices").json()["instance_types"]
    }
    assert prices["MI300X:1x24x256"] == 0.1
    assert prices["1x2"] == 0.5

    manifest = hello_manifest("custom-hw")
    manifest["chainlets"][1]["instance_type_id"] = "MI300X:1x24x256"
    body = custom.deploy(manifest)
    chain_id = body["chain_id"]
    deployment_id = body["chain_deployment"]["id"]
    env = custom.wait_current(chain_id, deployment_id)
    settings = {s["chainlet_name"]: s for s in env["chainlet_settings"]}
    assert settings["RandInt"]["instance_type"]["id"] == "MI300X:1x24x256"
    assert settings["RandInt"]["instance_type"]["gpu_type"] == "MI300X"
    chainlets = {c["name"]: c for c in custom.deployment(chain_id, deployment_id)["chainlets"]}
    assert chainlets["RandInt"]["instance_type_name"] == "MI300X, 24 vCPU, 256 GiB"

    # The server without the file does not know the type.
    response = api.post("/v1/chains/deploy", json=manifest)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "UNKNOWN_INSTANCE_TYPE"


def test_manifest_instance_type_ids_are_checked(api: Api) -> None:
    manifest = hello_manifest("typed", environment=None)
    manifest["chainlets"][0]["instance_type_id"] = "CPU:4x16"  # a documented alias
    manifest["chainlets"][1]["instance_type_id"] = "A10Gx4x16"
    body = api.deploy(manifest)
    names = {it["id"]: it["name"] for it in api.get("/v1/instance_types").json()["instance_types"]}
    chainlets = {c["name"]: c for c in body["chain_deployment"]["chainlets"]}
    assert chainlets["HelloWorld"]["instance_type_name"] == names["4x16"]
    assert chainlets["RandInt"]["instance_type_name"] == names["A10Gx4x16"]
    assert names["4x16"] != names["A10Gx4x16"]

    manifest["chainlets"][1]["instance_type_id"] = "NOPE:9x9x9"
    response = api.post("/v1/chains/deploy", json=manifest)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "code"}
    assert "NOPE:9x9x9" in response.json()["error"]
