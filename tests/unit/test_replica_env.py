"""runtime/replica_env.py: a replica's environment is built from scratch."""

from __future__ import annotations

import pathlib

import pytest

from chainyard.config import parse_names
from chainyard.runtime.replica_env import replica_env


def test_nothing_of_the_server_but_what_is_named(tmp_path: pathlib.Path) -> None:
    server = {
        "PATH": "/opt/bin:/usr/bin",
        "LANG": "en_US.UTF-8",
        "HOME": "/root",
        "CHAINYARD_BOOTSTRAP_API_KEY": "abc.secret",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t",
        "HTTPS_PROXY": "http://proxy:3128",
    }
    env = replica_env(
        home=tmp_path,
        pass_through=["HTTPS_PROXY", "NOT_SET"],
        chainlet_env={"OWN": "1"},
        source=server,
    )
    assert env["PATH"] == "/opt/bin:/usr/bin"
    assert env["LANG"] == "en_US.UTF-8"
    assert env["HOME"] == str(tmp_path)
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert env["OWN"] == "1"
    assert "CHAINYARD_BOOTSTRAP_API_KEY" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "NOT_SET" not in env
    assert not any("secret" in v for v in env.values())


def test_defaults_when_the_server_has_no_path(tmp_path: pathlib.Path) -> None:
    env = replica_env(home=tmp_path, source={})
    assert env["PATH"].startswith("/usr/local/bin")
    assert env["LANG"] == "C.UTF-8"


def test_pass_env_names_are_checked() -> None:
    assert parse_names("A, B_2,") == ("A", "B_2")
    assert parse_names(["X"]) == ("X",)
    with pytest.raises(ValueError, match="not environment variable names: 1A, A-B"):
        parse_names("1A,A-B")
