"""Real chains on the local runtime: `chainyard push` of unmodified truss_chains code, replicas as
processes, run_remote through the gateway, the instance-type update, logs, failures, restarts."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import REPO, LiveServer, wait_for

HELLO = REPO / "examples" / "hello_world" / "chain.py"
PIPELINE = REPO / "examples" / "text_pipeline" / "chain.py"

pytestmark = pytest.mark.slow


def pushed(server: LiveServer, chain_file: pathlib.Path, *args: str) -> dict[str, str]:
    result = server.push(chain_file, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    out: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def run_remote(
    server: LiveServer, chain_id: str, body: Any, *, key: str | None = None, path: str | None = None
) -> httpx.Response:
    with server.client(*(key,) if key else ()) as client:
        return client.post(path or f"/chains/{chain_id}/production/run_remote", json=body)


@pytest.fixture(scope="module")
def hello(live_server: LiveServer) -> dict[str, str]:
    return pushed(live_server, HELLO, "--promote", "--wait")


@pytest.fixture(scope="module")
def pipeline(live_server: LiveServer) -> dict[str, str]:
    with live_server.client() as client:
        response = client.post("/v1/secrets", json={"name": "score_bonus", "value": "100"})
        assert response.status_code == 200, response.text
    return pushed(live_server, PIPELINE, "--promote", "--wait")


def test_hello_world_answers_through_every_route(
    live_server: LiveServer, hello: dict[str, str]
) -> None:
    chain_id = hello["chain_id"]
    response = run_remote(live_server, chain_id, {"max_value": 3})
    assert response.status_code == 200, response.text
    greeting = response.json()
    assert greeting.count("Hello World! ") in (1, 2, 3)
    assert response.headers["x-baseten-request-id"]

    env_route = run_remote(
        live_server,
        chain_id,
        {"max_value": 1},
        path=f"/chains/{chain_id}/environments/production/run_remote",
    )
    assert env_route.json() == "Hello World! "
    deployment_route = run_remote(
        live_server,
        chain_id,
        {"max_value": 1},
        path=f"/chains/{chain_id}/deployment/{hello['chain_deployment_id']}/run_remote",
    )
    assert deployment_route.json() == "Hello World! "
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        baseten_form = client.post(
            "/production/run_remote",
            json={"max_value": 1},
            headers={
                "Host": f"chain-{chain_id}.api.example",
                "Authorization": f"Api-Key {live_server_key()}",
            },
        )
    assert baseten_form.status_code == 200, baseten_form.text
    assert baseten_form.json() == "Hello World! "


def live_server_key() -> str:
    from tests.e2e.conftest import KEY

    return KEY


def test_invoke_only_keys_may_call_but_not_manage(
    live_server: LiveServer, hello: dict[str, str]
) -> None:
    with live_server.client() as client:
        key = client.post("/v1/api_keys", json={"type": "WORKSPACE_INVOKE"}).json()["api_key"]
    assert run_remote(live_server, hello["chain_id"], {"max_value": 1}, key=key).status_code == 200
    with live_server.client(key) as client:
        assert client.get("/v1/chains").status_code == 403


def test_bad_input_unknown_targets_and_chainlet_errors(
    live_server: LiveServer, pipeline: dict[str, str]
) -> None:
    chain_id = pipeline["chain_id"]
    wrong_type = run_remote(live_server, chain_id, {"document": {"title": 1, "text": []}})
    assert 400 <= wrong_type.status_code < 500, wrong_type.text
    assert "error" in wrong_type.json()

    assert run_remote(live_server, "nosuchchain", {}).status_code == 404
    missing_env = run_remote(
        live_server, chain_id, {}, path=f"/chains/{chain_id}/environments/staging/run_remote"
    )
    assert missing_env.status_code == 404

    failing = run_remote(
        live_server, chain_id, {"document": {"title": "t", "text": "This is forbidden. Fine."}}
    )
    assert failing.status_code == 500, failing.text
    error = failing.json()["error"]
    assert error["exception_cls_name"] == "ValueError"
    # The dependency's error is chained into the entrypoint's, with the dependency's traceback.
    assert "Scorer" in error["exception_message"]
    assert "forbidden word" in error["exception_message"]
    assert "Chainlet-Traceback" in error["exception_message"]


def test_pydantic_io_secrets_and_environment(
    live_server: LiveServer, pipeline: dict[str, str]
) -> None:
    response = run_remote(
        live_server,
        pipeline["chain_id"],
        {"document": {"title": "Notes", "text": "One two three. Four five!"}},
    )
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["title"] == "Notes"
    assert summary["sentences"] == 2
    # Scorer declared the score_bonus secret (100) and got it.
    assert summary["best"] == {"sentence": "One two three", "score": 103}
    assert summary["total_score"] == 3 + 2 + 200
    assert summary["environment"] == "production"


def test_instance_type_update_redeploys_the_real_chain(
    live_server: LiveServer, pipeline: dict[str, str]
) -> None:
    chain_id = pipeline["chain_id"]
    with live_server.client() as client:
        response = client.post(
            f"/v1/chains/{chain_id}/environments/production/chainlet_settings/instance_types/update",
            json={"updates": [{"chainlet_name": "Scorer", "instance_type_id": "2x8"}]},
        )
        assert response.status_code == 200, response.text
        new_id = response.json()["chain_deployment"]["id"]

        def promoted() -> bool:
            env = client.get(f"/v1/chains/{chain_id}/environments/production").json()
            current = env["current_deployment"]
            return bool(current["id"] == new_id and env["candidate_deployment"] is None)

        wait_for(promoted, what="the new deployment to be promoted")
        new = client.get(f"/v1/chains/{chain_id}/deployments/{new_id}").json()
        types = {c["name"]: c["instance_type_name"] for c in new["chainlets"]}
        assert types["Scorer"] == "2 vCPU, 8 GiB"
        old_id = pipeline["chain_deployment_id"]
        wait_for(
            lambda: (
                client.get(f"/v1/chains/{chain_id}/deployments/{old_id}").json()["status"]
                == "SCALED_TO_ZERO"
            ),
            what="the old deployment to scale to zero",
        )
    response = run_remote(live_server, chain_id, {"document": {"title": "x", "text": "a b."}})
    assert response.status_code == 200, response.text
    assert response.json()["best"]["score"] == 102


def test_chainlet_logs_hold_build_and_replica_output(
    live_server: LiveServer, hello: dict[str, str]
) -> None:
    chain_id, deployment_id = hello["chain_id"], hello["chain_deployment_id"]
    with live_server.client() as client:
        deployment = client.get(f"/v1/chains/{chain_id}/deployments/{deployment_id}").json()
        chainlet = next(c for c in deployment["chainlets"] if c["name"] == "RandInt")
        path = f"/v1/chains/{chain_id}/deployments/{deployment_id}/chainlets/{chainlet['id']}/logs"

        def replica_lines() -> list[dict[str, Any]]:
            logs: list[dict[str, Any]] = client.get(path).json()["logs"]
            return [line for line in logs if line["message"].endswith(" serving")]

        lines = wait_for(replica_lines, what="replica output in the logs")
        replica = lines[0]["replica"]
        assert replica and len(replica) == 5
        everything = client.get(path).json()["logs"]
        assert any("build of RandInt" in line["message"] for line in everything)
        only = client.get(path, params={"replica": replica}).json()["logs"]
        assert only and all(line["replica"] == replica for line in only)


def test_failed_build_reports_pip_error(live_server: LiveServer, tmp_path: pathlib.Path) -> None:
    source = tmp_path / "broken"
    source.mkdir()
    (source / "chain.py").write_text(
        "import truss_chains as chains\n\n\n"
        "class Needy(chains.ChainletBase):\n"
        "    remote_config = chains.RemoteConfig(\n"
        "        docker_image=chains.DockerImage(\n"
        "            pip_requirements=['chainyard-no-such-package-xyz==1.0']\n"
        "        )\n"
        "    )\n\n"
        "    async def run_remote(self, x: int) -> int:\n"
        "        return x\n"
    )
    result = live_server.push(source / "chain.py", "--name", "broken", "--wait", "--timeout", "300")
    assert result.returncode != 0
    assert "BUILD_FAILED" in result.stderr
    assert "chainyard-no-such-package-xyz" in result.stderr


def test_stop_leaves_no_replica_and_restart_serves_again(
    live_server: LiveServer, hello: dict[str, str]
) -> None:
    assert live_server.replica_processes()
    live_server.stop()
    wait_for(lambda: not live_server.replica_processes(), timeout=30, what="replicas to stop")
    live_server.start()
    response = wait_for(
        lambda: (
            (r := run_remote(live_server, hello["chain_id"], {"max_value": 1})).status_code == 200
            and r
        ),
        what="the chain to answer after a restart",
    )
    assert response.json() == "Hello World! "
