"""A replica's environment is built from scratch: nothing of the server's reaches chainlet code
unless the operator names it (`--pass-env` / CHAINYARD_PASS_ENV)."""

from __future__ import annotations

import pathlib
import secrets
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import KEY, REPO, LiveServer, _free_port
from tests.e2e.test_local_chains import pushed, run_remote

PROBE = REPO / "tests" / "e2e" / "chains" / "environ_probe.py"
MARKER = secrets.token_hex(16)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["local", pytest.param("ray", marks=pytest.mark.ray)])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("environ")
    live = LiveServer(
        data_dir=root / "data",
        port=_free_port(),
        log=root / "server.log",
        env={
            "CY_SERVER_SECRET": MARKER,
            "CY_OPERATOR_PASSED": "passed-on",
            "CHAINYARD_PASS_ENV": "CY_OPERATOR_PASSED",
        },
    )
    if request.param == "ray":
        live.runtime = "ray"
        live.ray = request.getfixturevalue("ray_cluster")
    live.start()
    yield live
    live.stop()


def test_replicas_get_a_minimal_environment(server: LiveServer) -> None:
    out = pushed(server, PROBE, "--promote", "--wait")
    response = run_remote(server, out["chain_id"], {})
    assert response.status_code == 200, response.text
    seen: dict[str, str] = response.json()
    # The server's secrets, by name and by value, are nowhere.
    assert "CHAINYARD_BOOTSTRAP_API_KEY" not in seen
    assert not any(k.startswith("CHAINYARD_") for k in seen), sorted(seen)
    assert "CY_SERVER_SECRET" not in seen
    assert not any(MARKER in v or KEY in v for v in seen.values())
    # Of Ray's own variables only the raylet's pid (which node) passes, never its credentials.
    assert not {k for k in seen if k.startswith("RAY_")} - {"RAY_RAYLET_PID"}, sorted(seen)
    # What the operator named, and the chainlet's own env_variables, are there.
    assert seen["CY_OPERATOR_PASSED"] == "passed-on"
    assert seen["CY_CHAINLET_OWN"] == "mine"
    # A home of its own, not the server's.
    assert seen["HOME"] != str(pathlib.Path.home())
    assert "PATH" in seen
