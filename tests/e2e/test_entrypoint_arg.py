"""`chainyard push chain.py Entrypoint` for a file with several chainlets and no
`mark_entrypoint`: the deployment builds, starts and answers (issue 15, item 8)."""

from __future__ import annotations

import pathlib

import pytest

from tests.e2e.conftest import LiveServer
from tests.e2e.test_local_chains import pushed, run_remote

UNMARKED = pathlib.Path(__file__).parent / "chains" / "unmarked.py"

pytestmark = pytest.mark.slow


def test_entrypoint_named_on_the_command_line_is_served(live_server: LiveServer) -> None:
    out = pushed(live_server, UNMARKED, "Greeter", "--promote", "--wait", "--name", "unmarked")
    assert out["status"] == "ACTIVE"
    response = run_remote(live_server, out["chain_id"], {"name": "yard"})
    assert response.status_code == 200, response.text
    assert response.json() == "hello yard!"


def test_without_the_entrypoint_push_says_which_to_name(live_server: LiveServer) -> None:
    result = live_server.push(UNMARKED)
    assert result.returncode != 0
    assert "no entrypoint in" in result.stderr
    assert "name the class on the command line" in result.stderr
