"""SIGKILL the server at random points during push, instance-type update and promotion, restart it
each time, and check that nothing is lost or left behind: every deployment settles, the
environment serves from an ACTIVE deployment, the replica processes match the store, and every
acknowledged change is there."""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import REPO, LiveServer, _free_port, wait_for
from tests.support import replica_processes

HELLO = REPO / "examples" / "hello_world" / "chain.py"
KILL_POINTS = 21
STEADY = {"ACTIVE", "SCALED_TO_ZERO", "INACTIVE", "BUILD_FAILED", "DEPLOY_FAILED", "FAILED"}

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[LiveServer]:
    live = LiveServer(data_dir=tmp_path / "data", port=_free_port(), log=tmp_path / "server.log")
    live.start()
    yield live
    live.stop()


def _kill(server: LiveServer) -> None:
    assert server.process is not None
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    server.process = None


def _audit(client: httpx.Client, chain_id: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"/v1/chains/{chain_id}/audit_logs", params=params).json()
        entries.extend(page["items"])
        if not page["pagination"]["has_more"]:
            return entries
        cursor = page["pagination"]["cursor"]


def test_sigkill_at_random_points_loses_and_leaks_nothing(server: LiveServer) -> None:
    rng = random.Random(int(os.environ.get("CHAINYARD_CRASH_SEED", "7")))
    first = server.push(HELLO, "--name", "crashy", "--promote", "--wait")
    assert first.returncode == 0, first.stderr[-3000:]
    ids = json.loads(first.stdout.strip().splitlines()[-1])
    chain_id = ids["chain_id"]
    env_path = f"/v1/chains/{chain_id}/environments/production"
    acked_deployments = {ids["chain_deployment_id"]}
    acked_updates: list[str] = []  # new deployment ids the update answered with
    # (instance type asked for, acknowledged?) in the order sent
    type_requests: list[tuple[str, bool]] = []
    kinds_killed: dict[str, int] = {}

    def push() -> Callable[[], None]:
        def run() -> None:
            result = server.push(HELLO, "--name", "crashy", "--promote")
            if result.returncode == 0:
                acked_deployments.add(
                    json.loads(result.stdout.strip().splitlines()[-1])["chain_deployment_id"]
                )

        return run

    def update(instance_type: str) -> Callable[[], None]:
        def run() -> None:
            type_requests.append((instance_type, False))
            with server.client() as client:
                try:
                    r = client.post(
                        f"{env_path}/chainlet_settings/instance_types/update",
                        json={
                            "updates": [
                                {"chainlet_name": "RandInt", "instance_type_id": instance_type}
                            ]
                        },
                    )
                except httpx.HTTPError:
                    return
            if r.status_code == 200:
                type_requests[-1] = (instance_type, True)
                new = r.json()["chain_deployment"]
                if new is not None:
                    acked_updates.append(new["id"])
                    acked_deployments.add(new["id"])

        return run

    def promote_older() -> Callable[[], None]:
        def run() -> None:
            with server.client() as client:
                try:
                    deployments = client.get(f"/v1/chains/{chain_id}/deployments").json()
                    candidates = [
                        d["id"]
                        for d in deployments["deployments"]
                        if d["status"] in ("ACTIVE", "SCALED_TO_ZERO")
                    ]
                    if len(candidates) < 2:
                        return
                    r = client.post(f"{env_path}/promote", json={"deployment_id": candidates[-1]})
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    acked_deployments.add(r.json()["id"])

        return run

    for point in range(KILL_POINTS):
        kind = ("push", "update", "promote")[point % 3]
        operation = {
            "push": push(),
            "update": update(("2x8", "1x4", "4x16")[point % 3]),
            "promote": promote_older(),
        }[kind]
        worker = threading.Thread(target=operation)
        worker.start()
        # Before the answer, between the answer and the promotion, or during the promotion.
        time.sleep(rng.uniform(0.0, 2.5))
        _kill(server)
        kinds_killed[kind] = kinds_killed.get(kind, 0) + 1
        worker.join(timeout=120)
        server.start()

    assert sum(kinds_killed.values()) >= 20
    with server.client() as client:

        def settled() -> dict[str, Any] | None:
            env = client.get(env_path).json()
            deployments = client.get(f"/v1/chains/{chain_id}/deployments").json()["deployments"]
            if env["candidate_deployment"] is not None:
                return None
            if any(d["status"] not in STEADY for d in deployments):
                return None
            return {"env": env, "deployments": deployments}

        state = wait_for(settled, timeout=240, what="every deployment to settle")
        env, deployments = state["env"], state["deployments"]
        assert env["current_deployment"]["status"] == "ACTIVE"

        # Nothing acknowledged is missing.
        known = {d["id"] for d in deployments}
        assert acked_deployments <= known, acked_deployments - known
        audited = _audit(client, chain_id)
        deployed = {
            e["event_data"].get("chain_deployment_id")
            for e in audited
            if e["event_type"] == "CHAIN_DEPLOYED"
        }
        assert acked_deployments - {ids["chain_deployment_id"]} <= deployed | known
        changed = {
            e["event_data"].get("chain_deployment_id")
            for e in audited
            if e["event_type"] == "CHAINLET_INSTANCE_TYPE_CHANGED"
        }
        assert set(acked_updates) <= changed, set(acked_updates) - changed
        # The setting is the last acknowledged type, or one asked for after it whose answer the
        # kill cut off (it may have been written just before).
        settings = {
            s["chainlet_name"]: s["instance_type"]["id"]
            for s in client.get(env_path).json()["chainlet_settings"]
        }
        last_acked = max((i for i, (_, ok) in enumerate(type_requests) if ok), default=-1)
        allowed = {t for i, (t, _) in enumerate(type_requests) if i > last_acked}
        if last_acked >= 0:
            allowed.add(type_requests[last_acked][0])
        else:
            allowed.add("1x2")
        assert settings["RandInt"] in allowed, (settings, type_requests)

        # The processes match the store: as many replica processes as ready replicas.
        def matched() -> bool:
            ready = sum(
                c["active_replica_count"]
                for d in client.get(f"/v1/chains/{chain_id}/deployments").json()["deployments"]
                for c in d["chainlets"]
            )
            return ready == len(replica_processes.replica_pids(server.data_dir))

        wait_for(matched, timeout=60, what="replica processes to match the store")
        # Inference works on what is left.
        r = client.post(f"/chains/{chain_id}/production/run_remote", json={"max_value": 2})
        assert r.status_code == 200, r.text
