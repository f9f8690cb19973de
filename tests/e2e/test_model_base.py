"""`chains.ModelBase` on real processes: a model pushed on its own is a chain of one, called on the
chain's run_remote URLs and on Baseten's model predict URLs; a chainlet calls a model dependency
through its stub's `predict`."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import KEY, LiveServer

CHAINS = pathlib.Path(__file__).parent / "chains"
AUTH = {"Authorization": f"Api-Key {KEY}"}

pytestmark = pytest.mark.slow


def pushed(server: LiveServer, chain_file: pathlib.Path) -> dict[str, str]:
    result = server.push(chain_file, "--promote", "--wait")
    assert result.returncode == 0, result.stderr[-3000:]
    out: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def tally(live_server: LiveServer) -> dict[str, str]:
    return pushed(live_server, CHAINS / "model_alone.py")


def post(server: LiveServer, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        return client.post(path, json=body, headers={**AUTH, **(headers or {})})


def test_a_model_alone_is_a_chain_of_one(live_server: LiveServer, tally: dict[str, str]) -> None:
    chain_id = tally["chain_id"]
    with live_server.client() as client:
        chain = client.get(f"/v1/chains/{chain_id}").json()
        deployment = client.get(
            f"/v1/chains/{chain_id}/deployments/{tally['chain_deployment_id']}"
        ).json()
    # Named by its remote_config, as Baseten names the model.
    assert chain["name"] == "tally-model"
    assert [c["name"] for c in deployment["chainlets"]] == ["Tally"]

    first = post(live_server, f"/chains/{chain_id}/production/run_remote", {"increment": 2})
    assert first.status_code == 200, first.text
    # The constructor builds the model; `load` is not called (as on Baseten, where truss_chains'
    # generated model builds the class and never calls its `load`).
    assert first.json() == {
        "total": 2,
        "note": "",
        "loaded": False,
        "environment": "production",
    }
    second = post(
        live_server,
        f"/chains/{chain_id}/production/run_remote",
        {"increment": 3, "note": "again"},
    )
    assert second.json()["total"] == 5 and second.json()["note"] == "again"


def test_baseten_model_predict_urls(live_server: LiveServer, tally: dict[str, str]) -> None:
    model_id, deployment_id = tally["chain_id"], tally["chain_deployment_id"]
    host = {"Host": f"model-{model_id}.api.example"}
    forms = [
        ("/production/predict", host),
        ("/environments/production/predict", host),
        (f"/deployment/{deployment_id}/predict", host),
        (f"/models/{model_id}/production/predict", {}),
        (f"/models/{model_id}/environments/production/predict", {}),
        (f"/models/{model_id}/deployment/{deployment_id}/predict", {}),
    ]
    totals = []
    for path, headers in forms:
        response = post(live_server, path, {"increment": 1}, headers)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["x-baseten-request-id"]
        totals.append(response.json()["total"])
    assert totals == sorted(totals) and len(set(totals)) == len(forms)
    # The model's id where a chain's is expected, or none at all: 404, as for run_remote.
    assert post(live_server, "/production/predict", {"increment": 1}).status_code == 404
    missing = post(live_server, "/models/nosuchmodel/production/predict", {"increment": 1})
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "model_does_not_exist"


def test_model_errors_answer_as_a_chainlet_does(
    live_server: LiveServer, tally: dict[str, str]
) -> None:
    path = f"/models/{tally['chain_id']}/production/predict"
    wrong = post(live_server, path, {"increment": "many"})
    assert wrong.status_code == 400, wrong.text
    failing = post(live_server, path, {"increment": -1})
    assert failing.status_code == 500, failing.text
    error = failing.json()["error"]
    assert error["exception_cls_name"] == "ValueError"
    assert "the tally only grows" in error["exception_message"]


def test_a_chainlet_calls_a_model_dependency(live_server: LiveServer) -> None:
    ids = pushed(live_server, CHAINS / "model_dependency.py")
    with live_server.client() as client:
        deployment = client.get(
            f"/v1/chains/{ids['chain_id']}/deployments/{ids['chain_deployment_id']}"
        ).json()
    assert sorted(c["name"] for c in deployment["chainlets"]) == ["Measure", "Scale"]
    response = post(
        live_server, f"/chains/{ids['chain_id']}/production/run_remote", {"values": [1, 2.5]}
    )
    assert response.status_code == 200, response.text
    assert response.json() == [3.0, 7.5]
