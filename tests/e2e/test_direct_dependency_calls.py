"""A chainlet's calls to its dependency go straight to one of the dependency's replicas once the
replica knows them (chains/direct_calls.py, gateway/direct.py): the gateway's request counter of
the dependency stops moving. What still holds: the dependency's demand reaches the autoscaler
(a burst of direct calls scales it up), a dependency at zero is woken by the gateway and the
call held meanwhile, and another chain's key cannot read the table."""

from __future__ import annotations

import concurrent.futures
import json
import pathlib
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LiveServer, wait_for

CHAINS = pathlib.Path(__file__).parent / "chains"

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("live_server", ["local"], indirect=True)]


def _push(server: LiveServer, name: str) -> dict[str, str]:
    result = server.push(CHAINS / f"{name}.py", "--promote", "--wait", "-o", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    ids: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    with server.client() as client:
        deployment = client.get(
            f"/v1/chains/{ids['chain_id']}/deployments/{ids['chain_deployment_id']}"
        ).json()
    return {**ids, **{c["name"]: c["id"] for c in deployment["chainlets"]}}


@pytest.fixture(scope="module")
def chain(live_server: LiveServer) -> dict[str, str]:
    ids = _push(live_server, "direct")
    _autoscaling(live_server, ids["chain_id"], "Entry", min_replica=1, max_replica=1)
    return ids


def _autoscaling(server: LiveServer, chain_id: str, name: str, **settings: int) -> None:
    with server.client() as client:
        response = client.patch(
            f"/v1/chains/{chain_id}/environments/production/chainlet_settings/autoscaling_settings",
            json={"updates": [{"chainlet_name": name, "autoscaling_settings": settings}]},
        )
    assert response.status_code == 200, response.text


def _gateway_requests(server: LiveServer, chainlet_id: str) -> float:
    """Requests the gateway forwarded to the chainlet (its dependency route included)."""
    with server.client() as client:
        text = client.get("/metrics").text
    label = f'chainlet_id="{chainlet_id}"'
    for line in text.splitlines():
        if line.startswith("chainyard_requests_total") and label in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _call(server: LiveServer, chain_id: str, x: int, pause: float = 0.0) -> dict[str, Any]:
    with server.client() as client:
        response = client.post(
            f"/chains/{chain_id}/production/run_remote", json={"x": x, "pause": pause}
        )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert result["y"] == x + 1
    return result


def _chainlet(server: LiveServer, ids: dict[str, str], name: str) -> dict[str, Any]:
    with server.client() as client:
        deployment = client.get(
            f"/v1/chains/{ids['chain_id']}/deployments/{ids['chain_deployment_id']}"
        ).json()
    found: dict[str, Any] = next(c for c in deployment["chainlets"] if c["name"] == name)
    return found


def _batch_skips_the_gateway(server: LiveServer, ids: dict[str, str]) -> bool:
    before = _gateway_requests(server, ids["Dep"])
    entry_before = _gateway_requests(server, ids["Entry"])
    for x in range(5):
        _call(server, ids["chain_id"], x)
    assert _gateway_requests(server, ids["Entry"]) == entry_before + 5
    return _gateway_requests(server, ids["Dep"]) == before


def test_entry_calls_dep_without_crossing_the_gateway(
    live_server: LiveServer, chain: dict[str, str]
) -> None:
    # The first calls may go through the gateway while Entry's replica learns Dep's replicas.
    wait_for(
        lambda: _batch_skips_the_gateway(live_server, chain),
        timeout=60,
        what="Entry's calls to Dep to go straight to Dep's replica",
    )
    assert _batch_skips_the_gateway(live_server, chain)


def test_another_chain_s_key_cannot_read_the_table(
    live_server: LiveServer, chain: dict[str, str]
) -> None:
    leaky = _push(live_server, "leaky")
    with live_server.client() as client:
        their_key = client.post(
            f"/chains/{leaky['chain_id']}/production/run_remote", json={}
        ).json()
    assert isinstance(their_key, str) and their_key
    url = f"{live_server.url}/internal/chainlets/{chain['Dep']}/replicas"
    for key, status in ((their_key, 403), ("not-a-key-0123456789abcdefghijklmnop", 401)):
        response = httpx.get(
            url, params={"wait": "0"}, headers={"Authorization": f"Api-Key {key}"}, timeout=30
        )
        assert response.status_code == status, response.text
        assert "replicas" not in response.json() and "127.0.0.1" not in response.text
    # Its own dependency's table it may read (and its own chain key opens only that).
    own = httpx.get(
        f"{live_server.url}/internal/chainlets/{leaky['Helper']}/replicas",
        params={"wait": "0"},
        headers={"Authorization": f"Api-Key {their_key}"},
        timeout=30,
    )
    assert own.status_code == 200 and len(own.json()["replicas"]) >= 1


def test_a_burst_of_direct_calls_scales_the_dependency_up(
    live_server: LiveServer, chain: dict[str, str]
) -> None:
    _autoscaling(
        live_server,
        chain["chain_id"],
        "Dep",
        min_replica=1,
        max_replica=3,
        concurrency_target=1,
        autoscaling_window=10,
        scale_down_delay=1,
    )
    wait_for(lambda: _batch_skips_the_gateway(live_server, chain), timeout=60, what="direct")
    dep_before = _gateway_requests(live_server, chain["Dep"])
    # 6 callers, each waiting on Dep (one call at a time per replica) back to back: the
    # gateway sees none of Dep's calls, only what Entry's replica reports.
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda x: _call(live_server, chain["chain_id"], x, 0.4), range(60)))
    pids = {r["pid"] for r in results}
    assert _gateway_requests(live_server, chain["Dep"]) - dep_before <= 2
    assert len(pids) > 1 or _chainlet(live_server, chain, "Dep")["active_replica_count"] > 1, (
        "Dep did not scale up under direct calls"
    )


def test_a_dependency_at_zero_is_woken_and_the_call_held(
    live_server: LiveServer, chain: dict[str, str]
) -> None:
    # A callee stays up while its callers run (reconciler: `_callee_in_use`): the whole
    # deployment goes to zero, and the call wakes it. Entry's fresh replica knows no replica of
    # Dep at first: its call goes through the gateway, which holds it while Dep starts.
    for name in ("Entry", "Dep"):
        _autoscaling(
            live_server,
            chain["chain_id"],
            name,
            min_replica=0,
            max_replica=1,
            autoscaling_window=10,
            scale_down_delay=1,
        )
    wait_for(
        lambda: all(
            _chainlet(live_server, chain, name)["active_replica_count"] == 0
            for name in ("Entry", "Dep")
        ),
        timeout=120,
        what="the deployment to scale to zero",
    )
    assert _call(live_server, chain["chain_id"], 7)["y"] == 8
    wait_for(lambda: _batch_skips_the_gateway(live_server, chain), timeout=60, what="direct")
