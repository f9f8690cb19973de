"""An in-process chainyard server for API tests: real store, reconciler and simulated runtime."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import httpx
from fastapi.testclient import TestClient

from chainyard.config import ServerConfig
from chainyard.services.context import Core

ADMIN_KEY = "admin0001.testsecretvalue-0123456789abcdef"


@dataclasses.dataclass
class Api:
    """A client already authenticated as the bootstrap (full access) key of workspace `default`."""

    client: TestClient
    config: ServerConfig
    key: str = ADMIN_KEY

    @property
    def core(self) -> Core:
        core: Core = self.client.app.state.core  # type: ignore[attr-defined]
        return core

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def get(self, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        return self.client.get(path, headers=self.headers(key), **kw)

    def post(self, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        return self.client.post(path, headers=self.headers(key), **kw)

    def patch(self, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        return self.client.patch(path, headers=self.headers(key), **kw)

    def delete(self, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        return self.client.delete(path, headers=self.headers(key), **kw)

    def deploy(self, manifest: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        response = self.post("/v1/chains/deploy", key=key, json=manifest)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_for(
        self, predicate: Callable[[], Any], *, timeout: float = 20.0, what: str = "condition"
    ) -> Any:
        """Polls until `predicate` is truthy (the reconciler works in the background)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.02)

    def environment(self, chain_id: str, env: str = "production") -> dict[str, Any]:
        response = self.get(f"/v1/chains/{chain_id}/environments/{env}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def deployment(self, chain_id: str, deployment_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/chains/{chain_id}/deployments/{deployment_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_status(self, chain_id: str, deployment_id: str, *statuses: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            d = self.deployment(chain_id, deployment_id)
            return d if d["status"] in statuses else None

        result: dict[str, Any] = self.wait_for(check, what=f"deployment status in {statuses}")
        return result

    def wait_current(
        self, chain_id: str, deployment_id: str, env: str = "production"
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            e = self.environment(chain_id, env)
            current = e["current_deployment"]
            return (
                e
                if current and current["id"] == deployment_id and not e["candidate_deployment"]
                else None
            )

        result: dict[str, Any] = self.wait_for(check, what=f"{deployment_id} current in {env}")
        return result


def fast_config(**overrides: Any) -> ServerConfig:
    base: dict[str, Any] = {
        "bootstrap_api_key": ADMIN_KEY,
        "runtime": "simulated",
        "reconcile_interval": 0.05,
        "sim_build_delay": 0.02,
        "sim_ready_delay": 0.02,
    }
    base.update(overrides)
    return ServerConfig(**base)


def hello_manifest(
    chain_name: str = "hello", environment: str | None = "production"
) -> dict[str, Any]:
    """Baseten's HelloWorld example: an entrypoint that calls RandInt."""
    manifest: dict[str, Any] = {
        "chain_name": chain_name,
        "entrypoint": "HelloWorld",
        "chainlets": [
            {
                "name": "HelloWorld",
                "dependencies": ["RandInt"],
                "compute": {"cpu_count": 1, "memory": "2Gi"},
            },
            {"name": "RandInt", "compute": {"cpu_count": 1, "memory": "2Gi"}},
        ],
    }
    if environment is not None:
        manifest["environment"] = environment
    return manifest
