"""The gateway remembers where an environment's requests go (gateway/route_cache.py), and forgets
it the moment the environment moves: right after a promotion that keeps the old deployment
running, the next call already reaches the new one."""

from __future__ import annotations

import json
import pathlib

import pytest

from tests.e2e.conftest import LiveServer, wait_for

pytestmark = pytest.mark.slow

CHAIN = """
import truss_chains as chains


@chains.mark_entrypoint("versioned")
class Versioned(chains.ChainletBase):
    async def run_remote(self) -> str:
        return "{version}"
"""


def _push(live_server: LiveServer, tmp_path: pathlib.Path, version: str, *args: str) -> str:
    source = tmp_path / version / "chain.py"
    source.parent.mkdir()
    source.write_text(CHAIN.format(version=version))
    result = live_server.push(source, "--name", "routed", "--wait", "-o", "json", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return str(json.loads(result.stdout.strip().splitlines()[-1])["chain_deployment_id"])


@pytest.mark.parametrize("live_server", ["local"], indirect=True)
def test_a_promotion_moves_the_next_request_at_once(
    live_server: LiveServer, tmp_path: pathlib.Path
) -> None:
    first = _push(live_server, tmp_path, "v1", "--promote")
    second = _push(live_server, tmp_path, "v2")
    with live_server.client() as client:
        chain_id = client.get("/v1/chains").json()["chains"][0]["id"]
        run = f"/chains/{chain_id}/production/run_remote"
        # Remembered now: these requests no longer read the store.
        for _ in range(5):
            assert client.post(run, json={}).json() == "v1"
        promoted = client.post(
            f"/v1/chains/{chain_id}/environments/production/promote",
            json={"deployment_id": second, "scale_down_previous_deployment": False},
        )
        assert promoted.status_code == 200, promoted.text
        wait_for(
            lambda: (
                client.get(f"/v1/chains/{chain_id}/environments/production").json()[
                    "current_deployment"
                ]["id"]
                == second
            ),
            what="the promotion",
        )
        # The old deployment still answers at its own route: only a forgotten route sends the
        # environment's requests to the new one.
        assert client.post(f"/chains/{chain_id}/deployment/{first}/run_remote", json={}).json() == (
            "v1"
        )
        assert client.post(run, json={}).json() == "v2"
