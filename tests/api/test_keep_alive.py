"""After a refused input the client's keep-alive connection stays usable: a real uvicorn server,
one HTTP/1.1 connection. (A 500 from an unhandled exception makes uvicorn close the connection.)"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import httpx
import pytest

from tests.sdk.live import LiveServer, serve


@pytest.fixture
def live(tmp_path: pathlib.Path) -> Iterator[LiveServer]:
    yield from serve(tmp_path)


def _local_address(response: httpx.Response) -> object:
    return response.extensions["network_stream"].get_extra_info("client_addr")


def test_refused_inputs_keep_the_connection(live: LiveServer) -> None:
    deep = 5_000
    manifest = {
        "chain_name": "deep",
        "entrypoint": "C0",
        "chainlets": [
            {"name": f"C{i}", "dependencies": [f"C{i + 1}"] if i + 1 < deep else []}
            for i in range(deep)
        ],
    }
    refused = [
        ("POST", "/v1/secrets", '{"name": "s", "value": "\\ud800"}', "INVALID_TEXT"),
        ("POST", "/v1/api_keys", '{"type": "WORKSPACE_INVOKE", "name": "\\udfff"}', "INVALID_TEXT"),
        ("POST", "/v1/chains/deploy", json.dumps(manifest), "TOO_MANY_CHAINLETS"),
    ]
    headers = {"Authorization": f"Bearer {live.key}", "content-type": "application/json"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(base_url=live.url, headers=headers, limits=limits, timeout=30) as client:
        first = client.get("/v1/secrets")
        assert first.status_code == 200
        connection = _local_address(first)
        for method, path, body, code in refused:
            response = client.request(method, path, content=body.encode())
            assert response.status_code == 400, (path, response.text)
            assert response.json()["code"] == code
            assert response.headers.get("connection") != "close"
            after = client.get("/v1/secrets")
            assert after.status_code == 200
            assert after.json()["secrets"] == []
            # The same connection: a new one would come from another local port.
            assert _local_address(response) == connection
            assert _local_address(after) == connection
