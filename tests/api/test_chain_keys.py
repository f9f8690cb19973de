"""The chain key a replica presents on the gateway's internal route: random, stored hashed, and
good only for the chainlets its own chainlet declared as dependencies, in its own deployment."""

from __future__ import annotations

import hashlib
import hmac
import threading
from typing import Any

import pytest
from sqlalchemy import select

from chainyard.domain.errors import Forbidden, NotFound, Unauthorized
from chainyard.services import api_keys, chainlet_credentials, inference
from chainyard.store.credentials import ChainletCredential
from tests.support.server import Api


def _manifest(chain_name: str) -> dict[str, Any]:
    """Entry calls Callee; Sibling is in the same deployment but not declared by Entry."""
    compute = {"cpu_count": 1, "memory": "2Gi"}
    return {
        "chain_name": chain_name,
        "entrypoint": "Entry",
        "environment": "production",
        "chainlets": [
            {"name": "Entry", "dependencies": ["Callee"], "compute": compute},
            {"name": "Callee", "compute": compute},
            {"name": "Sibling", "compute": compute},
        ],
    }


def _deployed(
    api: Api, chain_name: str, key: str | None = None, *, promote: bool = True
) -> dict[str, str]:
    """Chainlet name -> id, plus "deployment" and "chain"."""
    manifest = _manifest(chain_name)
    if not promote:
        del manifest["environment"]
    body = api.deploy(manifest, key=key)
    chain_id, deployment_id = body["chain_id"], body["chain_deployment"]["id"]
    response = api.get(f"/v1/chains/{chain_id}/deployments/{deployment_id}", key=key)
    ids = {c["name"]: c["id"] for c in response.json()["chainlets"]}
    return {**ids, "deployment": deployment_id, "chain": chain_id}


def _internal(api: Api, chainlet_id: str, token: str) -> Any:
    return api.client.post(
        f"/internal/chainlets/{chainlet_id}/predict",
        headers={"Authorization": f"Bearer {token}"},
        json={},
    )


@pytest.fixture
def two_chains(api: Api) -> tuple[Api, dict[str, str], dict[str, str]]:
    mine = _deployed(api, "keys-mine")
    other_key = api_keys.admin_create_key(api.core, "elsewhere", "WORKSPACE_MANAGE_ALL")
    theirs = _deployed(api, "keys-theirs", key=other_key)
    return api, mine, theirs


def test_a_chain_key_reaches_only_its_chainlets_declared_dependencies(
    two_chains: tuple[Api, dict[str, str], dict[str, str]],
) -> None:
    api, mine, theirs = two_chains
    token = chainlet_credentials.issue(api.core, mine["deployment"], mine["Entry"])

    target = inference.resolve_internal(api.core, mine["Callee"], token)
    assert (target.chainlet_id, target.chainlet_name) == (mine["Callee"], "Callee")
    assert target.deployment_id == mine["deployment"]
    # Through the gateway the call gets past the key (the simulated replica cannot answer it).
    assert _internal(api, mine["Callee"], token).status_code not in (401, 403)

    # An undeclared sibling, itself, another workspace's chainlet, an id that does not exist:
    # the same refusal, which names nothing.
    for chainlet_id in (mine["Sibling"], mine["Entry"], theirs["Callee"], "nosuchchainlet1"):
        with pytest.raises(Forbidden):
            inference.resolve_internal(api.core, chainlet_id, token)
        response = _internal(api, chainlet_id, token)
        assert response.status_code == 403, response.text
        assert "Callee" not in response.text and theirs["Callee"] not in response.text


def test_a_callee_s_key_does_not_reach_its_caller(api: Api) -> None:
    mine = _deployed(api, "keys-callee")
    token = chainlet_credentials.issue(api.core, mine["deployment"], mine["Callee"])
    for chainlet_id in (mine["Entry"], mine["Sibling"]):
        assert _internal(api, chainlet_id, token).status_code == 403


@pytest.mark.parametrize("kind", ["random", "empty", "derived", "hash"])
def test_any_other_token_is_an_invalid_chain_key(api: Api, kind: str) -> None:
    mine = _deployed(api, f"keys-{kind}")
    issued = chainlet_credentials.issue(api.core, mine["deployment"], mine["Entry"])
    token = {
        "random": "not-a-key-0123456789abcdefghijklmnopqrstuvw",
        "empty": "",
        # What the server's key used to derive: reading secret.key no longer forges a key.
        "derived": hmac.new(
            api.core.cipher.derive("internal-token"),
            mine["deployment"].encode(),
            hashlib.sha256,
        ).hexdigest(),
        # What the store holds is no key either.
        "hash": hashlib.sha256(issued.encode()).hexdigest(),
    }[kind]
    with pytest.raises(Unauthorized):
        inference.resolve_internal(api.core, mine["Callee"], token)
    response = _internal(api, mine["Callee"], token)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid chain key"


def test_keys_are_random_stored_hashed_and_go_with_their_deployment(api: Api) -> None:
    mine = _deployed(api, "keys-stored")
    api.wait_current(mine["chain"], mine["deployment"])
    # The reconciler issued one for Entry's replicas (it has a dependency); none for the others.
    with api.core.db.read() as session:
        rows = list(
            session.scalars(
                select(ChainletCredential).where(
                    ChainletCredential.deployment_id == mine["deployment"]
                )
            )
        )
    assert [r.chainlet_id for r in rows] == [mine["Entry"]]
    first = chainlet_credentials.issue(api.core, mine["deployment"], mine["Entry"])
    second = chainlet_credentials.issue(api.core, mine["deployment"], mine["Entry"])
    assert first != second and len(first) >= 43
    with api.core.db.read() as session:
        stored = set(session.scalars(select(ChainletCredential.token_hash)))
    assert hashlib.sha256(first.encode()).hexdigest() in stored
    assert first not in stored and second not in stored
    # Both keep working: a replica started before a restart keeps its key.
    for token in (first, second):
        assert inference.resolve_internal(api.core, mine["Callee"], token).chainlet_id

    # A second deployment, so that the first may be deleted; its keys go with it.
    newer = _deployed(api, "keys-stored")
    api.wait_current(mine["chain"], newer["deployment"])
    response = api.delete(f"/v1/chains/{mine['chain']}/deployments/{mine['deployment']}")
    assert response.status_code == 200, response.text
    with api.core.db.read() as session:
        left = session.scalars(
            select(ChainletCredential).where(ChainletCredential.deployment_id == mine["deployment"])
        ).all()
    assert left == []
    api.core.chain_key_cache.clear()  # verified keys are cached for a few seconds
    with pytest.raises(Unauthorized):
        inference.resolve_internal(api.core, mine["Callee"], first)


def _replicas(api: Api, chainlet_id: str, token: str, **params: str) -> Any:
    return api.client.get(
        f"/internal/chainlets/{chainlet_id}/replicas",
        headers={"Authorization": f"Api-Key {token}"},
        params={"wait": "0", **params},
    )


def test_the_replica_table_opens_only_to_a_key_that_may_call_the_chainlet(
    two_chains: tuple[Api, dict[str, str], dict[str, str]],
) -> None:
    """The poll hands out replicas' credentials: the same key, the same reach as the route."""
    api, mine, theirs = two_chains
    token = chainlet_credentials.issue(api.core, mine["deployment"], mine["Entry"])
    answer = _replicas(api, mine["Callee"], token)
    assert answer.status_code == 200, answer.text
    # The simulated runtime's replicas have no credential, so none is handed out.
    assert answer.json()["enabled"] is True and answer.json()["replicas"] == []
    for chainlet_id in (mine["Sibling"], mine["Entry"], theirs["Callee"], "nosuchchainlet1"):
        refused = _replicas(api, chainlet_id, token)
        assert refused.status_code == 403, refused.text
        assert "replicas" not in refused.json()
    their_token = chainlet_credentials.issue(api.core, theirs["deployment"], theirs["Entry"])
    assert _replicas(api, mine["Callee"], their_token).status_code == 403
    assert _replicas(api, mine["Callee"], "not-a-key-0123456789abcdefghij").status_code == 401


def test_a_caller_s_report_of_its_direct_calls_counts_as_demand(api: Api) -> None:
    mine = _deployed(api, "keys-demand")
    token = chainlet_credentials.issue(api.core, mine["deployment"], mine["Entry"])
    router = api.client.app.state.router  # type: ignore[attr-defined]
    assert _replicas(api, mine["Callee"], token, caller="c1", load="2.5").status_code == 200
    assert _replicas(api, mine["Callee"], token, caller="c2", load="1").status_code == 200
    assert router.demand()[mine["Callee"]] == 3.5
    # A caller that reports no more calls in flight no longer counts.
    assert _replicas(api, mine["Callee"], token, caller="c1", load="0").status_code == 200
    assert router.demand()[mine["Callee"]] == 1.0


def test_keys_are_not_issued_for_a_deleted_deployment_and_never_race_its_delete(
    api: Api,
) -> None:
    """The reconciler issues keys while a DELETE removes the same deployment's chainlets: on
    PostgreSQL the two once deadlocked (the DELETE answered 503), and a key for a deployment
    already gone failed the reconciler's whole tick on its foreign key."""
    serving = _deployed(api, "keys-race")
    chain_id = serving["chain"]
    doomed = [_deployed(api, "keys-race", promote=False) for _ in range(5)]
    wanted = [(d["deployment"], d[name]) for d in doomed for name in ("Entry", "Callee", "Sibling")]
    failures: list[BaseException] = []
    stop = threading.Event()

    def issue_forever() -> None:
        while not stop.is_set():
            try:
                chainlet_credentials.issue_many(api.core, wanted)
            except BaseException as exc:  # any failure is the finding
                failures.append(exc)
                return

    issuer = threading.Thread(target=issue_forever)
    issuer.start()
    try:
        for d in doomed:
            response = api.delete(f"/v1/chains/{chain_id}/deployments/{d['deployment']}")
            assert response.status_code == 200, response.text
    finally:
        stop.set()
        issuer.join()
    assert failures == []
    assert chainlet_credentials.issue_many(api.core, wanted) == {}
    with pytest.raises(NotFound):
        chainlet_credentials.issue(api.core, doomed[0]["deployment"], doomed[0]["Entry"])
    with api.core.db.read() as session:
        left = session.scalars(
            select(ChainletCredential.deployment_id).where(
                ChainletCredential.deployment_id.in_([d["deployment"] for d in doomed])
            )
        ).all()
    assert left == []
