"""A secret named in `assets.secret_keys` that the workspace lacks: `chainyard push` and the build
log say so, and reading it fails with an error naming it (issue 15, item 10)."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest

from tests.e2e.conftest import LiveServer, wait_for
from tests.e2e.test_local_chains import run_remote

CHAIN = pathlib.Path(__file__).parent / "chains" / "secret_reader.py"

pytestmark = pytest.mark.slow


def test_missing_secret_is_reported_at_push_in_the_build_log_and_by_the_call(
    live_server: LiveServer,
) -> None:
    with live_server.client() as client:
        response = client.post("/v1/secrets", json={"name": "cy_present_token", "value": "p1"})
        assert response.status_code == 200, response.text
    result = live_server.push(CHAIN, "--promote", "--wait")
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert "SecretReader" in warnings[0] and "'cy_absent_token'" in warnings[0]
    assert "cy_present_token" not in warnings[0]

    chain_id, deployment_id = out["chain_id"], out["chain_deployment_id"]
    with live_server.client() as client:
        deployment = client.get(f"/v1/chains/{chain_id}/deployments/{deployment_id}").json()
        chainlet = deployment["chainlets"][0]
        path = f"/v1/chains/{chain_id}/deployments/{deployment_id}/chainlets/{chainlet['id']}/logs"

        def warning_lines() -> list[dict[str, Any]]:
            logs: list[dict[str, Any]] = client.get(path).json()["logs"]
            return [line for line in logs if "cy_absent_token" in line["message"]]

        line = wait_for(warning_lines, what="the missing secret in the build log")[0]
        assert line["level"] == "WARNING"

    present = run_remote(live_server, chain_id, {"name": "cy_present_token"})
    assert present.status_code == 200, present.text
    assert present.json() == "p1"

    absent = run_remote(live_server, chain_id, {"name": "cy_absent_token"})
    assert absent.status_code == 500
    error = absent.json()["error"]
    assert error["exception_cls_name"] == "KeyError"
    assert "'cy_absent_token' is not set in this workspace" in error["exception_message"]

    undeclared = run_remote(live_server, chain_id, {"name": "score_bonus"})
    assert undeclared.status_code == 500
    message = undeclared.json()["error"]["exception_message"]
    assert "'score_bonus' is not in this chainlet's assets.secret_keys" in message
