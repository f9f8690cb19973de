"""GET /v1/chains/{chain_id}/deployments/{id}/chainlets/{chainlet_id}/logs."""

from __future__ import annotations

import time
from typing import Any

from chainyard.store.logs import ChainletLog
from tests.support.server import Api, hello_manifest

# Lines added straight to the store, after the build's own lines, to exercise the filters.
_EXTRA: list[tuple[str, str | None]] = [
    ("debug: cache warm", "DEBUG"),
    ("serving request alpha", "INFO"),
    ("slow request alpha took long", "WARNING"),
    ("request beta failed: boom", "ERROR"),
    ("a line without a level", None),
]


def _deployed(api: Api) -> tuple[str, str, dict[str, str]]:
    body = api.deploy(hello_manifest())
    chain_id = body["chain_id"]
    dep_id = body["chain_deployment"]["id"]
    api.wait_current(chain_id, dep_id)
    chainlets = api.deployment(chain_id, dep_id)["chainlets"]
    return chain_id, dep_id, {c["name"]: c["id"] for c in chainlets}


def _logs(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    logs: list[dict[str, Any]] = response.json()["logs"]
    return logs


def _messages(logs: list[dict[str, Any]]) -> list[str]:
    return [line["message"] for line in logs]


def _add_lines(api: Api, chainlet_id: str) -> None:
    now = time.time_ns()
    with api.core.db.write() as session:
        for i, (message, level) in enumerate(_EXTRA):
            session.add(
                ChainletLog(
                    chainlet_id=chainlet_id,
                    timestamp_ns=now + i,
                    message=message,
                    level=level,
                    replica="abcde" if "request" in message else None,
                    component="server",
                )
            )


def test_logs_after_a_deploy_and_their_filters(api: Api) -> None:
    chain_id, dep_id, chainlets = _deployed(api)
    path = f"/v1/chains/{chain_id}/deployments/{dep_id}/chainlets/{chainlets['RandInt']}/logs"

    build = api.wait_for(lambda: _logs(api, path), what="build log lines")
    messages = _messages(build)
    assert "build of RandInt started" in messages
    assert not any("HelloWorld" in m for m in messages)
    for line in build:
        assert set(line) >= {"timestamp", "message", "replica"}
        assert isinstance(line["timestamp"], str) and line["timestamp"].isdigit()
    timestamps = [int(line["timestamp"]) for line in build]
    assert timestamps == sorted(timestamps)

    _add_lines(api, chainlets["RandInt"])
    everything = _logs(api, path)
    assert _messages(everything)[: len(build)] == messages
    assert _messages(everything)[len(build) :] == [m for m, _ in _EXTRA]

    # Direction and limit.
    desc = _logs(api, path, direction="desc")
    assert _messages(desc) == list(reversed(_messages(everything)))
    assert _messages(_logs(api, path, limit=2)) == _messages(everything)[:2]
    assert _messages(_logs(api, path, direction="desc", limit=1)) == ["a line without a level"]
    assert _messages(_logs(api, path, direction="asc")) == _messages(everything)

    # Regex search, includes (all must appear), excludes (any drops the line).
    assert _messages(_logs(api, path, search_pattern=r"^(serving )?request (alpha|beta)")) == [
        "serving request alpha",
        "request beta failed: boom",
    ]
    assert _messages(_logs(api, path, search_pattern=r"^build of \w+ started$")) == [
        "build of RandInt started"
    ]
    assert _messages(_logs(api, path, includes=["request", "alpha"])) == [
        "serving request alpha",
        "slow request alpha took long",
    ]
    assert _messages(_logs(api, path, includes="Request")) == []  # case-sensitive
    without = _messages(_logs(api, path, excludes=["request", "build"]))
    assert "serving request alpha" not in without
    assert "build of RandInt started" not in without
    assert "a line without a level" in without
    assert _messages(
        _logs(api, path, includes="request", excludes="beta", search_pattern="alpha$")
    ) == ["serving request alpha"]

    # Levels: at or above the floor; lines without a level go once a floor is set.
    assert _messages(_logs(api, path, min_level="WARNING")) == [
        "slow request alpha took long",
        "request beta failed: boom",
    ]
    assert _messages(_logs(api, path, min_level="ERROR")) == ["request beta failed: boom"]
    debug_up = _messages(_logs(api, path, min_level="DEBUG"))
    assert "a line without a level" not in debug_up
    assert "debug: cache warm" in debug_up and "build of RandInt started" in debug_up
    info = _logs(api, path, min_level="INFO")
    assert all(line["level"] in ("INFO", "WARNING", "ERROR") for line in info)

    # Replica and component filters.
    assert _messages(_logs(api, path, replica="abcde")) == [
        "serving request alpha",
        "slow request alpha took long",
        "request beta failed: boom",
    ]
    assert len(_logs(api, path, component="server")) == len(_EXTRA)
    assert _logs(api, path, component="nothing") == []

    # A window that ends before anything was written holds nothing.
    assert _logs(api, path, start_epoch_millis=0, end_epoch_millis=1) == []

    # Each chainlet has its own lines.
    other = f"/v1/chains/{chain_id}/deployments/{dep_id}/chainlets/{chainlets['HelloWorld']}/logs"
    other_messages = _messages(_logs(api, other))
    assert "build of HelloWorld started" in other_messages
    assert not set(other_messages) & {m for m, _ in _EXTRA}


def test_bad_filters_and_unknown_ids(api: Api) -> None:
    body = api.deploy(hello_manifest(environment=None))
    chain_id = body["chain_id"]
    dep_id = body["chain_deployment"]["id"]
    chainlet_id = body["chain_deployment"]["chainlets"][0]["id"]
    base = f"/v1/chains/{chain_id}/deployments/{dep_id}/chainlets"
    path = f"{base}/{chainlet_id}/logs"
    assert api.get(path).status_code == 200
    assert api.get(path, params={"limit": 1000, "search_pattern": "a" * 256}).status_code == 200
    ok = {"includes": [str(i) for i in range(8)], "excludes": [str(i) for i in range(8)]}
    assert api.get(path, params=ok).status_code == 200

    for params in (
        {"search_pattern": "("},
        {"search_pattern": "[unclosed"},
        {"search_pattern": "*oops"},
        {"search_pattern": "a" * 257},
        {"includes": [str(i) for i in range(9)]},
        {"excludes": [str(i) for i in range(9)]},
        {"limit": 0},
        {"limit": 1001},
        {"limit": "many"},
        {"direction": "sideways"},
        {"min_level": "LOUD"},
        {"start_epoch_millis": 2000, "end_epoch_millis": 1000},
        {"start_epoch_millis": 0, "end_epoch_millis": 8 * 24 * 3600 * 1000},  # over 7 days
        {"start_epoch_millis": 10**19, "end_epoch_millis": 10**19 + 1},
        {"start_epoch_millis": -5, "end_epoch_millis": 1},
        {"end_epoch_millis": 10**30},
    ):
        response = api.get(path, params=params)
        assert response.status_code == 400, (params, response.text)
        assert set(response.json()) == {"error", "code"}

    other_chain = api.deploy(hello_manifest("other", environment=None))
    other_chainlet = other_chain["chain_deployment"]["chainlets"][0]["id"]
    for unknown in (
        f"{base}/nosuchchainlet/logs",
        f"{base}/{other_chainlet}/logs",  # a chainlet of another deployment
        f"/v1/chains/{chain_id}/deployments/nosuchdeployment/chainlets/{chainlet_id}/logs",
        f"/v1/chains/nosuchchain/deployments/{dep_id}/chainlets/{chainlet_id}/logs",
    ):
        response = api.get(unknown)
        assert response.status_code == 404, (unknown, response.text)
        assert set(response.json()) == {"error", "code"}
