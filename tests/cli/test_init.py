"""`chainyard init`: the chain it scaffolds, what it refuses, and that chainyard's own discovery
(what `push` runs first) finds the scaffolded chain. No server: init calls none. Running the
scaffold and pushing it to a real server is tests/e2e/test_init_chain.py."""

from __future__ import annotations

import os
import pathlib

import pytest
from typer.testing import CliRunner, Result

from chainyard.chains.discovery import discover
from chainyard.cli import init as scaffold
from chainyard.cli.main import app

# truss_chains, imported in process by discovery, trips a pydantic deprecation of its own.
pytestmark = pytest.mark.filterwarnings("ignore:Using `@model_validator`")


def invoke(*args: str, input: str | None = None) -> Result:
    # The test run's own settings must not choose the URL that the next steps show.
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CHAINYARD_")}
    env["CHAINYARD_CONFIG"] = "/nonexistent/chainyard.toml"
    return CliRunner().invoke(app, ["init", *args], input=input, env=env)


def test_init_scaffolds_a_chain_of_two_chainlets(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "greeter"
    # Not on a terminal: the default file name, whatever stdin holds; nothing waits for an answer.
    result = invoke(str(target), input="other.py\n")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in target.iterdir()) == ["my_chain.py"]
    source = (target / "my_chain.py").read_text()
    assert "import truss_chains as chains" in source
    assert '@chains.mark_entrypoint("greeter")' in source
    assert "chains.depends(Shout)" in source
    assert "chainyard push --watch my_chain.py" in source
    assert "@" + "CHAIN@" not in source and "@FILE@" not in source

    chain_file = target / "my_chain.py"
    assert f"created {chain_file}" in result.stdout
    assert f"chainyard push --watch {chain_file}" in result.stdout
    assert 'curl -s -H "Authorization: Api-Key $CHAINYARD_API_KEY"' in result.stdout
    assert "http://127.0.0.1:8080/chains/CHAIN_ID/development/run_remote" in result.stdout
    assert scaffold.SAMPLE_BODY in result.stdout

    info = discover(chain_file)
    assert info.chain_name == "greeter"
    assert info.entrypoint == scaffold.ENTRYPOINT
    by_name = {c.name: c for c in info.chainlets}
    assert set(by_name) == {scaffold.ENTRYPOINT, scaffold.DEPENDENCY}
    assert by_name[scaffold.ENTRYPOINT].dependencies == [scaffold.DEPENDENCY]


def test_init_in_the_current_directory_with_a_file_name(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "my project!"
    project.mkdir()
    monkeypatch.chdir(project)
    result = invoke("--name", "pipeline")
    assert result.exit_code == 0, result.output
    assert [p.name for p in project.iterdir()] == ["pipeline.py"]
    # Paths are shown as the user can type them from where they are.
    assert "chainyard push --watch pipeline.py" in result.stdout
    assert "python pipeline.py" in result.stdout
    info = discover(project / "pipeline.py")
    assert info.chain_name == "my-project"


def test_init_asks_for_the_file_name_on_a_terminal(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scaffold, "_interactive", lambda: True)
    answered = invoke(str(tmp_path / "a"), input="service.py\n")
    assert answered.exit_code == 0, answered.output
    assert (tmp_path / "a" / "service.py").is_file()
    defaulted = invoke(str(tmp_path / "b"), input="\n")
    assert defaulted.exit_code == 0, defaulted.output
    assert (tmp_path / "b" / scaffold.DEFAULT_FILE).is_file()


def test_init_refuses_a_directory_that_is_not_empty(tmp_path: pathlib.Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    result = invoke(str(tmp_path))
    assert result.exit_code == 2
    assert "is not empty" in result.stderr and "Traceback" not in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_init_refuses_a_file(tmp_path: pathlib.Path) -> None:
    existing = tmp_path / "chain.py"
    existing.write_text("x = 1\n")
    result = invoke(str(existing))
    assert result.exit_code == 2
    assert "is not a directory" in result.stderr
    assert existing.read_text() == "x = 1\n"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("sub/chain.py", "not a path"),
        ("my-chain.py", "Python identifier"),
        ("class.py", "Python identifier"),
        ("json.py", "shadow"),
        ("truss_chains", "shadow"),
    ],
)
def test_init_refuses_a_file_name_that_cannot_be_imported(
    tmp_path: pathlib.Path, name: str, says: str
) -> None:
    target = tmp_path / "new"
    result = invoke(str(target), "--name", name)
    assert result.exit_code == 2, result.output
    assert says in result.stderr
    # Refused before anything is written: the directory is not even created.
    assert not target.exists()


def test_chain_names_follow_the_directory() -> None:
    assert scaffold.chain_name_for(pathlib.Path("/srv/Text Pipeline"), "x.py") == "Text-Pipeline"
    assert scaffold.chain_name_for(pathlib.Path("/srv/-_-"), "summarize.py") == "summarize"
    assert scaffold.chain_name_for(pathlib.Path("/"), "_x.py") == "x"
