"""Failed authentications are throttled per client address (services/auth_throttle.py): on the
management API and on inference, without slowing other addresses."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi.testclient import TestClient

from tests.support.server import ADMIN_KEY, Api, hello_manifest

BURST = 20
# Slow enough that no token comes back while a test runs, so counts are exact.
RATE = 0.01


def _new_key() -> str:
    return f"{secrets.token_hex(4)}.{secrets.token_urlsafe(24)}"


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _assert_429(response: Any, *, inference: bool = False) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["retry_after"] > 0
    assert int(response.headers["Retry-After"]) >= 1
    assert "failed authentications" in body["error"]
    if inference:
        assert body["error_code"] == "rate_limited"
    else:
        assert body["code"] == "RATE_LIMITED"


def test_failures_from_one_address_are_throttled_and_other_addresses_are_not(
    make_api: Any,
) -> None:
    api: Api = make_api(auth_failure_limit=BURST, auth_failures_per_second=RATE)
    chain_id = api.deploy(hello_manifest())["chain_id"]
    attacker = TestClient(api.client.app, client=("198.51.100.7", 40000))
    for i in range(BURST):
        path = "/v1/chains" if i % 2 else f"/chains/{chain_id}/production/run_remote"
        response = attacker.request(
            "POST" if i % 2 == 0 else "GET", path, headers=_bearer(_new_key())
        )
        assert response.status_code == 401, (i, response.text)
    # The bucket is empty: management and inference answer 429, before any lookup.
    _assert_429(attacker.get("/v1/chains", headers=_bearer(_new_key())))
    _assert_429(attacker.get("/v1/secrets", headers=_bearer(ADMIN_KEY + "x")))
    _assert_429(
        attacker.post(f"/chains/{chain_id}/production/run_remote", headers=_bearer(_new_key())),
        inference=True,
    )
    # The server's other clients are untouched.
    assert api.get("/v1/chains").status_code == 200

    # Another address: its valid key and its own failures are untouched by the first's.
    other = TestClient(api.client.app, client=("203.0.113.9", 40001))
    fresh = api.post("/v1/api_keys", json={"type": "WORKSPACE_MANAGE_ALL"}).json()["api_key"]
    assert other.get("/v1/chains", headers=_bearer(fresh)).status_code == 200
    assert other.get("/v1/chains", headers=_bearer(_new_key())).status_code == 401
    response = other.post(
        f"/chains/{chain_id}/production/run_remote", headers=_bearer(_new_key()), json={}
    )
    assert response.status_code == 401, response.text
    assert response.json()["error_code"] == "unauthorized"


def test_an_ipv6_client_counts_by_its_64(make_api: Any) -> None:
    api: Api = make_api(auth_failure_limit=BURST, auth_failures_per_second=RATE)
    for i in range(BURST):
        client = TestClient(api.client.app, client=(f"2001:db8:1:2::{i + 1:x}", 40000))
        assert client.get("/v1/chains", headers=_bearer(_new_key())).status_code == 401
    same_64 = TestClient(api.client.app, client=("2001:db8:1:2:ffff::1", 40000))
    _assert_429(same_64.get("/v1/chains", headers=_bearer(_new_key())))
    next_64 = TestClient(api.client.app, client=("2001:db8:1:3::1", 40000))
    assert next_64.get("/v1/chains", headers=_bearer(_new_key())).status_code == 401


def test_missing_keys_do_not_count_and_the_limit_can_be_turned_off(make_api: Any) -> None:
    api: Api = make_api(auth_failure_limit=BURST, auth_failures_per_second=RATE)
    for _ in range(BURST * 2):
        assert api.client.get("/v1/chains").status_code == 401  # no key: no lookup to spend
    assert api.get("/v1/chains", key=_new_key()).status_code == 401

    unlimited: Api = make_api(auth_failure_limit=0)
    for _ in range(BURST * 2):
        assert unlimited.get("/v1/chains", key=_new_key()).status_code == 401
    assert unlimited.get("/v1/chains").status_code == 200
