"""Where settings come from (flag > env > ~/.chainyard.toml > default) and what each failure
exits with."""

from __future__ import annotations

import json
import pathlib
import socket

import pytest

from chainyard.cli.config import ConfigError, OutputFormat, resolve
from chainyard.cli.session import ExitCode
from tests.cli.conftest import Cli


def _write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _write(
        tmp_path / "c.toml",
        'url = "http://file:1"\napi_key = "file.key"\noutput = "json"\n'
        '[profiles.staging]\nurl = "http://staging:2"\napi_key = "staging.key"\n',
    )
    monkeypatch.setenv("CHAINYARD_CONFIG", str(config))
    for name in ("CHAINYARD_URL", "CHAINYARD_API_KEY", "CHAINYARD_OUTPUT", "CHAINYARD_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    from_file = resolve()
    assert (from_file.url, from_file.api_key, from_file.output) == (
        "http://file:1",
        "file.key",
        OutputFormat.json,
    )
    assert from_file.sources["url"].startswith("file ")
    profile = resolve(profile="staging")
    # The profile overrides the file's top level; what it does not set comes from there.
    assert (profile.url, profile.api_key, profile.output) == (
        "http://staging:2",
        "staging.key",
        OutputFormat.json,
    )
    monkeypatch.setenv("CHAINYARD_URL", "http://env:3/")
    monkeypatch.setenv("CHAINYARD_OUTPUT", "table")
    from_env = resolve(profile="staging")
    assert (from_env.url, from_env.api_key, from_env.output) == (
        "http://env:3",
        "staging.key",
        OutputFormat.table,
    )
    assert from_env.sources["url"] == "env"
    flags = resolve(url="http://flag:4", api_key="flag.key", output="json", profile="staging")
    assert (flags.url, flags.api_key, flags.output) == (
        "http://flag:4",
        "flag.key",
        OutputFormat.json,
    )
    assert set(flags.sources.values()) == {"flag"}

    monkeypatch.setenv("CHAINYARD_PROFILE", "staging")
    assert resolve().profile == "staging"
    with pytest.raises(ConfigError, match=r"no profile 'prod'.*staging"):
        resolve(profile="prod")


def test_defaults_and_bad_files(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CHAINYARD_URL", "CHAINYARD_API_KEY", "CHAINYARD_OUTPUT", "CHAINYARD_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CHAINYARD_CONFIG", str(tmp_path / "missing.toml"))
    # Away from any local server's data dir (./.chainyard) that would lend its key.
    monkeypatch.chdir(tmp_path)
    defaults = resolve()
    assert (defaults.url, defaults.api_key, defaults.output) == (
        "http://127.0.0.1:8080",
        None,
        OutputFormat.table,
    )
    monkeypatch.setenv("CHAINYARD_CONFIG", str(_write(tmp_path / "bad.toml", "url = [")))
    with pytest.raises(ConfigError, match="cannot read"):
        resolve()
    monkeypatch.setenv("CHAINYARD_CONFIG", str(_write(tmp_path / "num.toml", "url = 3")))
    with pytest.raises(ConfigError, match="url"):
        resolve()
    monkeypatch.setenv("CHAINYARD_CONFIG", str(_write(tmp_path / "out.toml", 'output = "yaml"')))
    with pytest.raises(ConfigError, match="output"):
        resolve()
    with pytest.raises(ConfigError, match="http"):
        resolve(url="ftp://x", output="table")


def test_the_cli_reads_the_file(cli: Cli) -> None:
    _write(
        cli.config_file,
        f'default_profile = "local"\n[profiles.local]\nurl = "{cli.live.url}"\n'
        f'api_key = "{cli.live.key}"\n',
    )
    shown = json.loads(
        cli.ok("config", "-o", "json", CHAINYARD_URL=None, CHAINYARD_API_KEY=None).stdout
    )
    assert shown["url"] == cli.live.url and shown["profile"] == "local"
    assert shown["api_key"] == cli.live.key.partition(".")[0] + ".***"
    assert shown["sources"]["url"].startswith("file")
    assert cli.ok("chains", "ls", CHAINYARD_URL=None, CHAINYARD_API_KEY=None).exit_code == 0
    table = cli.ok("config").stdout
    assert "env" in table and cli.live.url in table

    unknown = cli("chains", "ls", "--profile", "nope")
    assert unknown.exit_code == ExitCode.USAGE and "no profile 'nope'" in unknown.stderr
    bad_output = cli("chains", "ls", CHAINYARD_OUTPUT="xml")
    assert bad_output.exit_code == ExitCode.USAGE


def test_exit_codes(cli: Cli) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    unreachable = cli("chains", "ls", "--url", closed)
    assert unreachable.exit_code == ExitCode.UNREACHABLE and "cannot reach" in unreachable.stderr
    as_json = cli("chains", "ls", "--url", closed, "-o", "json")
    assert json.loads(as_json.stderr)["code"] == "ConnectionFailed"

    no_key = cli("chains", "ls", CHAINYARD_API_KEY=None)
    assert no_key.exit_code == ExitCode.AUTH
    assert cli("chains", "get", "nope").exit_code == ExitCode.NOT_FOUND
    assert cli("run", "nope", "--data", "{").exit_code == ExitCode.USAGE
    assert cli("chains", "nope").exit_code == ExitCode.USAGE
    assert cli("chains", "ls", "--limit", "0").exit_code == ExitCode.USAGE
    assert "Traceback" not in no_key.stderr + no_key.stdout
