"""POST /v1/chains/deploy: chains and environments on first use, manifest checks, instance types,
multipart uploads, and concurrent first deploys."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
import uuid
from typing import Any

import httpx
import pytest

from tests.support.server import Api, hello_manifest


@pytest.fixture(scope="module")
def api(shared_api: Api) -> Api:
    """This module shares one server per database; each test uses chains of its own."""
    return shared_api


def unique(prefix: str = "chain") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def chains_by_name(api: Api) -> dict[str, dict[str, Any]]:
    response = api.get("/v1/chains")
    assert response.status_code == 200, response.text
    return {c["name"]: c for c in response.json()["chains"]}


def environment_names(api: Api, chain_id: str) -> list[str]:
    response = api.get(f"/v1/chains/{chain_id}/environments")
    assert response.status_code == 200, response.text
    return [e["name"] for e in response.json()["environments"]]


def deploy_raw(api: Api, manifest: dict[str, Any]) -> httpx.Response:
    return api.post("/v1/chains/deploy", json=manifest)


# --- chains and environments ------------------------------------------------------------------


def test_new_name_creates_chain_and_production(api: Api) -> None:
    name = unique()
    assert name not in chains_by_name(api)
    body = api.deploy(hello_manifest(name))
    chain_id = body["chain_id"]
    chain = chains_by_name(api)[name]
    assert chain["id"] == chain_id
    assert chain["deployments_count"] == 1
    assert environment_names(api, chain_id) == ["production"]
    assert body["chain_deployment"]["chain_id"] == chain_id
    assert {c["name"] for c in body["chain_deployment"]["chainlets"]} == {"HelloWorld", "RandInt"}
    api.wait_current(chain_id, body["chain_deployment"]["id"])


def test_deploy_reuses_the_chain_by_name_and_by_id(api: Api) -> None:
    name = unique()
    first = api.deploy(hello_manifest(name, environment=None))
    chain_id = first["chain_id"]
    assert environment_names(api, chain_id) == []  # no environment asked for, none made

    again = api.deploy(hello_manifest(name, environment=None))
    assert again["chain_id"] == chain_id
    by_id = hello_manifest(environment=None)
    del by_id["chain_name"]
    by_id["chain_id"] = chain_id
    third = api.deploy(by_id)
    assert third["chain_id"] == chain_id

    ids = {first["chain_deployment"]["id"], again["chain_deployment"]["id"]}
    ids.add(third["chain_deployment"]["id"])
    assert len(ids) == 3
    assert chains_by_name(api)[name]["deployments_count"] == 3
    assert [c for c in chains_by_name(api) if c == name] == [name]


def test_unknown_chain_id_is_404(api: Api) -> None:
    manifest = hello_manifest()
    del manifest["chain_name"]
    manifest["chain_id"] = "nosuchchain"
    before = chains_by_name(api)
    response = deploy_raw(api, manifest)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "CHAIN_NOT_FOUND"
    assert chains_by_name(api) == before


def test_unknown_environment_is_404_and_creates_nothing(api: Api) -> None:
    name = unique()
    response = deploy_raw(api, hello_manifest(name, environment="staging"))
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "ENVIRONMENT_NOT_FOUND"
    assert "staging" in response.json()["error"]
    assert name not in chains_by_name(api)

    # On an existing chain: no deployment, no environment.
    chain_id = api.deploy(hello_manifest(name, environment=None))["chain_id"]
    response = deploy_raw(api, hello_manifest(name, environment="staging"))
    assert response.status_code == 404, response.text
    assert chains_by_name(api)[name]["deployments_count"] == 1
    assert environment_names(api, chain_id) == []

    # Once created, the environment can be deployed into.
    created = api.post(f"/v1/chains/{chain_id}/environments", json={"name": "staging"})
    assert created.status_code == 200, created.text
    body = api.deploy(hello_manifest(name, environment="staging"))
    api.wait_current(chain_id, body["chain_deployment"]["id"], env="staging")
    assert environment_names(api, chain_id) == ["staging"]


# --- bad manifests ----------------------------------------------------------------------------


def _bad(change: Any) -> dict[str, Any]:
    manifest = hello_manifest("placeholder")
    change(manifest)
    return manifest


def _chainlet(m: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in m["chainlets"] if c["name"] == name)
    return found


BAD_MANIFESTS: dict[str, tuple[Any, str]] = {
    "no-entrypoint": (lambda m: m.pop("entrypoint"), "no entrypoint"),
    "two-entrypoints": (
        lambda m: _chainlet(m, "RandInt").update(is_entrypoint=True),
        "more than one entrypoint: HelloWorld, RandInt",
    ),
    "unknown-entrypoint": (lambda m: m.update(entrypoint="Ghost"), "'Ghost'"),
    "unknown-dependency": (
        lambda m: _chainlet(m, "RandInt").update(dependencies=["Nope"]),
        "unknown chainlet 'Nope'",
    ),
    "cycle": (
        lambda m: (
            _chainlet(m, "RandInt").update(dependencies=["Other"]),
            m["chainlets"].append({"name": "Other", "dependencies": ["RandInt"]}),
        ),
        "cycle",
    ),
    "duplicate-names": (
        lambda m: m["chainlets"].append({"name": "RandInt"}),
        "'RandInt' appears more than once",
    ),
    "unknown-instance-type": (
        lambda m: _chainlet(m, "RandInt").update(instance_type_id="99x99"),
        "unknown instance type '99x99'",
    ),
    "no-fitting-gpu": (
        lambda m: _chainlet(m, "RandInt").update(compute={"gpu": "NOPE"}),
        "GPU type 'NOPE'",
    ),
    "too-big": (
        lambda m: _chainlet(m, "RandInt").update(compute={"cpu_count": 1000}),
        "RandInt",
    ),
    "bad-memory": (
        lambda m: _chainlet(m, "RandInt").update(compute={"memory": "lots"}),
        "RandInt",
    ),
    "name-and-id": (lambda m: m.update(chain_id="abc"), "exactly one of chain_name and chain_id"),
    "neither-name-nor-id": (
        lambda m: m.pop("chain_name"),
        "exactly one of chain_name and chain_id",
    ),
    "unknown-field": (lambda m: m.update(chainletz=[]), "chainletz"),
    # remote_config settings chainyard cannot honour (services/chainlet_image.py).
    "assets-cached": (
        lambda m: _chainlet(m, "RandInt").update(cached=[{"repo_id": "org/model"}]),
        "chainlet 'RandInt': Assets.cached:",
    ),
    "assets-weights": (
        lambda m: _chainlet(m, "RandInt").update(weights=[{"source": "hf://org/model"}]),
        "chainlet 'RandInt': Assets.weights:",
    ),
    "build-commands": (
        lambda m: _chainlet(m, "RandInt").update(build_commands=["echo hi"]),
        "chainlet 'RandInt': RemoteConfig.build_commands:",
    ),
    "uv-lock": (
        lambda m: _chainlet(m, "RandInt").update(
            requirements_file={"path": "uv.lock", "kind": "uv.lock"}
        ),
        "chainlet 'RandInt': DockerImage.requirements_file: uv.lock",
    ),
    "external-data-ftp": (
        lambda m: _chainlet(m, "RandInt").update(
            external_data=[{"url": "ftp://h/x", "local_data_path": "x"}]
        ),
        "chainlet 'RandInt': Assets.external_data:",
    ),
    "data-dir-outside": (
        lambda m: _chainlet(m, "RandInt").update(data_dir="../elsewhere"),
        "chainlet 'RandInt': DockerImage.data_dir: '../elsewhere' lies outside",
    ),
    "package-dir-outside": (
        lambda m: _chainlet(m, "RandInt").update(external_package_dirs=["../lib"]),
        "chainlet 'RandInt': DockerImage.external_package_dirs:",
    ),
    "newer-python": (
        lambda m: _chainlet(m, "RandInt").update(
            base_image={"kind": "custom", "name": "python:3.99", "python_version": "3.99"}
        ),
        "chainlet 'RandInt': DockerImage.base_image python:3.99 asks for Python 3.99",
    ),
    "bad-env-name": (
        lambda m: _chainlet(m, "RandInt").update(env_variables={"A B": "1"}),
        "chainlet 'RandInt': ChainletOptions.env_variables:",
    ),
    "unknown-compute-instance-type": (
        lambda m: _chainlet(m, "RandInt").update(instance_type_id="NOPE:9x9"),
        "chainlet 'RandInt': Compute.instance_type: unknown instance type",
    ),
    "bad-name": (lambda m: m.update(chain_name="bad name!"), "invalid name"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_bad_manifest_is_400_and_creates_nothing(api: Api, case: str) -> None:
    change, needle = BAD_MANIFESTS[case]
    manifest = _bad(change)
    name = unique()
    if manifest.get("chain_name") == "placeholder":
        manifest["chain_name"] = name
    before = chains_by_name(api)
    response = deploy_raw(api, manifest)
    assert response.status_code == 400, response.text
    body = response.json()
    assert needle in body["error"], body
    assert body["code"] not in ("INTERNAL", "BAD_REQUEST")
    assert chains_by_name(api) == before
    assert name not in chains_by_name(api)


def test_bad_deploy_to_existing_chain_adds_no_deployment(api: Api) -> None:
    name = unique()
    chain_id = api.deploy(hello_manifest(name))["chain_id"]
    response = deploy_raw(api, _bad(lambda m: m.update(chain_name=name, entrypoint="Ghost")))
    assert response.status_code == 400, response.text
    assert chains_by_name(api)[name]["deployments_count"] == 1
    audit = api.get(f"/v1/chains/{chain_id}/audit_logs", params={"limit": 200}).json()["items"]
    assert [e["event_type"] for e in audit].count("CHAIN_DEPLOYED") == 1


# --- instance types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("compute", "expected"),
    [
        ({"cpu_count": 1, "memory": "2Gi"}, "1x2"),
        ({"cpu_count": 1, "memory": "4Gi"}, "1x4"),
        ({"cpu_count": 2, "memory": "4Gi"}, "2x8"),
        ({"cpu_count": "500m", "memory": "512Mi"}, "1x2"),
        ({"cpu_count": 3, "memory": "1Gi"}, "4x16"),
        ({"cpu_count": 1, "memory": "2Gi", "gpu": "A10G"}, "A10Gx4x16"),
        ({"cpu_count": 1, "memory": "2Gi", "gpu": "A10G", "gpu_count": 2}, "A10G:2x24x96"),
    ],
)
def test_smallest_fitting_instance_type(api: Api, compute: dict[str, Any], expected: str) -> None:
    catalogue = api.get("/v1/instance_types").json()["instance_types"]
    by_id = {t["id"]: t for t in catalogue}
    manifest = hello_manifest(unique(), environment=None)
    manifest["chainlets"][1]["compute"] = compute
    body = api.deploy(manifest)
    names = {c["name"]: c["instance_type_name"] for c in body["chain_deployment"]["chainlets"]}
    assert names == {"HelloWorld": by_id["1x2"]["name"], "RandInt": by_id[expected]["name"]}


def test_named_instance_type_wins_over_compute(api: Api) -> None:
    manifest = hello_manifest(unique())
    manifest["chainlets"][1]["instance_type_id"] = "4x16"
    body = api.deploy(manifest)
    env = api.wait_current(body["chain_id"], body["chain_deployment"]["id"])
    types = {s["chainlet_name"]: s["instance_type"]["id"] for s in env["chainlet_settings"]}
    assert types == {"HelloWorld": "1x2", "RandInt": "4x16"}


# --- upload formats ---------------------------------------------------------------------------


def _source_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        content = b"import truss_chains as chains\n"
        info = tarfile.TarInfo("hello/chain.py")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_multipart_deploy_stores_the_source(api: Api) -> None:
    archive = _source_archive()
    name = unique()
    response = api.post(
        "/v1/chains/deploy",
        data={"manifest": json.dumps({**hello_manifest(name), "source_file": "hello/chain.py"})},
        files={"source": ("source.tar.gz", archive, "application/gzip")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    digest = hashlib.sha256(archive).hexdigest()
    stored = api.core.data_dir / "artifacts" / digest[:2] / f"{digest}.tar.gz"
    assert stored.read_bytes() == archive
    assert chains_by_name(api)[name]["id"] == body["chain_id"]
    api.wait_current(body["chain_id"], body["chain_deployment"]["id"])


def test_multipart_without_manifest_or_with_a_bad_one_is_400(api: Api) -> None:
    before = chains_by_name(api)
    missing = api.post(
        "/v1/chains/deploy", files={"source": ("s.tar.gz", _source_archive(), "application/gzip")}
    )
    assert missing.status_code == 400, missing.text
    assert "manifest" in missing.json()["error"]
    broken = api.post("/v1/chains/deploy", files={"manifest": (None, "{not json")})
    assert broken.status_code == 400, broken.text
    assert broken.json()["code"] == "INVALID_MANIFEST"
    assert chains_by_name(api) == before


def test_a_json_manifest_is_read_whatever_its_content_type(api: Api) -> None:
    # As Baseten's documented curls assume: `--data` labels the body form-encoded.
    for label in ("text/plain", "application/x-www-form-urlencoded"):
        response = api.client.post(
            "/v1/chains/deploy",
            content=json.dumps(hello_manifest(unique())),
            headers={**api.headers(), "Content-Type": label},
        )
        assert response.status_code == 200, response.text
    not_json = api.client.post(
        "/v1/chains/deploy",
        content=b"chain_name=x",
        headers={**api.headers(), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert not_json.status_code == 400, not_json.text
    assert not_json.json()["code"] == "INVALID_MANIFEST"


# --- concurrency ------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", [None, "production"])
def test_concurrent_first_deploys_create_one_chain(api: Api, environment: str | None) -> None:
    name = unique()
    n = 4
    barrier = threading.Barrier(n)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        response = deploy_raw(api, hello_manifest(name, environment=environment))
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(responses) == n

    ok = [r.json() for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert ok, [r.text for r in responses]
    for r in refused:
        # Only a second promotion into the new production environment may be refused.
        assert environment == "production", r.text
        assert (r.status_code, r.json()["code"]) == (409, "PROMOTION_IN_PROGRESS")
    chain_ids = {b["chain_id"] for b in ok}
    assert len(chain_ids) == 1
    chain = chains_by_name(api)[name]
    assert chain["id"] in chain_ids
    assert chain["deployments_count"] == len(ok)
    envs = environment_names(api, chain["id"])
    assert envs == ([] if environment is None else ["production"])
