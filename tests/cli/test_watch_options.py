"""`push --watch` and `watch`: the option errors found before anything is sent (no server)."""

from __future__ import annotations

import pathlib

import pytest
from typer.testing import CliRunner, Result

from chainyard.cli.main import app

REPO = pathlib.Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello_world" / "chain.py"

pytestmark = pytest.mark.filterwarnings("ignore:Using `@model_validator`")


def invoke(tmp_path: pathlib.Path, *args: str) -> Result:
    env = {
        "CHAINYARD_URL": "http://127.0.0.1:9",  # nothing listens: no request may be sent
        "CHAINYARD_API_KEY": "abcd1234.not-a-real-key",
        "CHAINYARD_CONFIG": str(tmp_path / "none.toml"),
        "CHAINYARD_PROFILE": None,
        "CHAINYARD_OUTPUT": None,
        "COLUMNS": "200",  # help tables narrower than their option names cut them short
    }
    return CliRunner().invoke(app, list(args), env=env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--watch", "--promote"], "cannot be promoted"),
        (["--watch", "--environment", "staging"], "in no environment"),
        (["--experimental-watch-chainlets", "RandInt", "--promote"], "cannot be promoted"),
        (["--watch-no-sleep"], "--watch-no-sleep requires --watch"),
    ],
)
def test_push_watch_usage_errors(tmp_path: pathlib.Path, args: list[str], message: str) -> None:
    result = invoke(tmp_path, "push", str(HELLO), *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_chainlets_are_refused_before_anything_is_pushed(tmp_path: pathlib.Path) -> None:
    pushed = invoke(tmp_path, "push", str(HELLO), "--experimental-watch-chainlets", "Nope,RandInt")
    assert pushed.exit_code == 2, pushed.output
    assert "no chainlet Nope in the chain (its chainlets: HelloWorld, RandInt)" in pushed.stderr
    watched = invoke(tmp_path, "watch", str(HELLO), "--experimental-chainlet-names", "Nope")
    assert watched.exit_code == 2, watched.output
    assert "no chainlet Nope" in watched.stderr


def test_help_lists_the_watch_options(tmp_path: pathlib.Path) -> None:
    push_help = invoke(tmp_path, "push", "--help").stdout
    for option in ("--watch", "--experimental-watch-chainlets", "--watch-no-sleep"):
        assert option in push_help
    watch_help = invoke(tmp_path, "watch", "--help").stdout
    assert "--experimental-chainlet-names" in watch_help and "--no-sleep" in watch_help
