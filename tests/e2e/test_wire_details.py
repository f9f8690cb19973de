"""Wire details a Baseten user relies on, against a real `chainyard serve`: the seed document's
own curl (no JSON Content-Type), regional hostnames, and inference that the management API's
rate limit does not throttle."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.conftest import KEY, LiveServer, _free_port
from tests.e2e.test_local_chains import HELLO, pushed

pytestmark = pytest.mark.slow

# The body of the seed document's curl (Baseten's published example for the instance-type
# update), byte for byte.
SEED_BODY = """{
  "updates": [
    {
      "chainlet_name": "HelloWorld",
      "instance_type_id": "1x4"
    },
    {
      "chainlet_name": "RandInt",
      "instance_type_id": "A10G:2x24x96"
    }
  ]
}"""
RATE_LIMIT = 5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("wire")
    live = LiveServer(
        data_dir=root / "data",
        port=_free_port(),
        log=root / "server.log",
        env={"CHAINYARD_RATE_LIMIT": str(RATE_LIMIT)},
    )
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def hello(server: LiveServer) -> dict[str, str]:
    return pushed(server, HELLO, "--promote", "--wait")


def _host_call(server: LiveServer, path: str, host: str, body: object = None) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        return client.post(
            path,
            content=json.dumps(body if body is not None else {}).encode(),
            headers={"Host": host, "Authorization": f"Api-Key {KEY}"},
        )


def test_regional_hostnames_name_the_environment(server: LiveServer, hello: dict[str, str]) -> None:
    chain_id = hello["chain_id"]
    answer = _host_call(
        server, "/run_remote", f"chain-{chain_id}-production.api.example", {"max_value": 1}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == "Hello World! "
    woken = _host_call(server, "/wake", f"chain-{chain_id}-production.api.example")
    assert woken.status_code == 202, woken.text
    # An environment the chain does not have, and a host that names none.
    missing = _host_call(server, "/run_remote", f"chain-{chain_id}-prod-us.api.example")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "model_does_not_exist"
    bare = _host_call(server, "/run_remote", f"chain-{chain_id}.api.example")
    assert bare.status_code == 404
    assert "chain-{chain_id}-{env_name}" in bare.json()["error"]
    # The environment forms on a regional host still take the environment from the path.
    by_path = _host_call(
        server,
        "/environments/production/run_remote",
        f"chain-{chain_id}-x.api.example",
        {"max_value": 1},
    )
    assert by_path.json() == "Hello World! "


def test_inference_is_not_throttled_by_the_management_rate_limit(
    server: LiveServer, hello: dict[str, str]
) -> None:
    path = f"/chains/{hello['chain_id']}/production/run_remote"

    def call(_: int) -> int:
        with server.client() as client:
            return client.post(path, json={"max_value": 1}).status_code

    # 16 connections, far above the per-key rate limit of 5 per second.
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(call, range(96)))
    assert codes == [200] * 96
    # The management API keeps its limit.
    with server.client() as client:
        managed = [client.get("/v1/instance_types").status_code for _ in range(4 * RATE_LIMIT)]
    assert 429 in managed


def test_a_text_label_on_a_json_body_is_read_as_json(server: LiveServer) -> None:
    with server.client() as client:
        labelled = client.post(
            "/v1/secrets",
            content=b'{"name": "labelled", "value": "v"}',
            headers={"Content-Type": "text/plain"},
        )
        assert labelled.status_code == 200, labelled.text
        assert "labelled" in {s["name"] for s in client.get("/v1/secrets").json()["secrets"]}


def _curl(server: LiveServer, url: str, body: str) -> tuple[int, str]:
    """The seed document's curl line, as written (curl labels `--data` form-encoded)."""
    curl = shutil.which("curl")
    if curl is not None:
        out = subprocess.run(
            [
                curl,
                "--silent",
                "--request",
                "POST",
                "--url",
                url,
                "--header",
                f"Authorization: Bearer {KEY}",
                "--data",
                body,
                "--write-out",
                "\n%{http_code}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        text, _, code = out.rpartition("\n")
        return int(code), text
    # Without curl, what it sends: the same bytes, labelled as a form.
    response = httpx.post(
        url,
        content=body.encode(),
        headers={
            "Authorization": f"Bearer {KEY}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        timeout=60,
    )
    return response.status_code, response.text


def test_the_seed_documents_curl_works_as_written(
    server: LiveServer, hello: dict[str, str]
) -> None:
    chain_id = hello["chain_id"]
    url = (
        f"{server.url}/v1/chains/{chain_id}/environments/production"
        "/chainlet_settings/instance_types/update"
    )
    # With no Content-Type at all, too (a client that sends raw bytes).
    unknown = b'{"updates": [{"chainlet_name": "Nope", "instance_type_id": "1x4"}]}'
    no_label = httpx.post(url, content=unknown, headers={"Authorization": f"Bearer {KEY}"})
    assert "content-type" not in {k.lower() for k in no_label.request.headers}
    # Read as JSON: the answer is about the chainlet, not about the body's format.
    assert 400 <= no_label.status_code < 500, no_label.text
    assert "Nope" in no_label.json()["error"]

    code, text = _curl(server, url, SEED_BODY)
    assert code == 200, text
    answer = json.loads(text)
    settings = {
        s["chainlet_name"]: s["instance_type"]["id"]
        for s in answer["chainlet_environment_settings"]
    }
    assert settings == {"HelloWorld": "1x4", "RandInt": "A10G:2x24x96"}
    assert answer["chain_deployment"]["id"] != hello["chain_deployment_id"]
