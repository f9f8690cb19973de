"""Right after `make serve`, the CLI on the same machine needs no key: it finds the local
server's initial key (`cli/local_server.py`)."""

from __future__ import annotations

import pathlib
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from chainyard.cli import local_server
from tests.cli.conftest import clean_env, command
from tests.e2e.conftest import REPO, _free_port

HELLO = REPO / "examples" / "hello_world" / "chain.py"


def test_find_key_only_for_loopback_urls(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "initial-api-key").write_text("abc.def\n")
    env = {"CHAINYARD_DATA_DIR": str(data), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert local_server.find_key("http://127.0.0.1:8080", env) == (
        "abc.def",
        data / "initial-api-key",
    )
    assert local_server.find_key("http://localhost:9", env) is not None
    assert local_server.find_key("https://chainyard.example.com", env) is None


def test_the_record_of_a_port_points_at_its_key_file(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    data = tmp_path / "served"
    data.mkdir()
    local_server.remember(8123, data, env)  # no key file yet: nothing recorded
    assert not (local_server.records_dir(env) / "8123").exists()
    (data / "initial-api-key").write_text("k1.secret\n")
    local_server.remember(8123, data, env)
    record = (local_server.records_dir(env) / "8123").read_text()
    assert "k1.secret" not in record  # the path, never the key
    assert local_server.find_key("http://127.0.0.1:8123", env) == (
        "k1.secret",
        (data / "initial-api-key").resolve(),
    )
    assert local_server.find_key("http://127.0.0.1:8124", env) is None


@pytest.fixture
def served(tmp_path: pathlib.Path) -> Iterator[tuple[str, pathlib.Path, dict[str, str]]]:
    """`chainyard serve` as `make serve` runs it: default data dir (./.chainyard), no key given."""
    project = tmp_path / "project"
    project.mkdir()
    port = _free_port()
    env = clean_env(HOME=str(tmp_path / "home"))
    env.pop("XDG_CACHE_HOME", None)
    process = subprocess.Popen(
        command("serve", "--port", str(port), "--runtime", "simulated", "--log-level", "warning"),
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve never became healthy"
            time.sleep(0.2)
        yield url, project, env
    finally:
        process.terminate()
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _cli(*args: str, cwd: pathlib.Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_push_right_after_serve_needs_no_key(
    served: tuple[str, pathlib.Path, dict[str, str]], tmp_path: pathlib.Path
) -> None:
    url, project, env = served
    assert (project / ".chainyard" / "initial-api-key").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # From another directory: the record `serve` left for its port leads to the key.
    pushed = _cli("push", str(HELLO), cwd=elsewhere, env={**env, "CHAINYARD_URL": url})
    assert pushed.returncode == 0, pushed.stderr
    # From inside the project, with no record (another user cache): ./.chainyard is found.
    inside = project / "sub"
    inside.mkdir()
    other_home = {**env, "HOME": str(tmp_path / "other"), "CHAINYARD_URL": url}
    listed = _cli("chains", "ls", "-o", "json", cwd=inside, env=other_home)
    assert listed.returncode == 0, listed.stderr
    assert "HelloWorld" in listed.stdout
    # Neither: the usual message, and the auth exit code.
    lost = _cli("push", str(HELLO), cwd=elsewhere, env=other_home)
    assert lost.returncode == 5, lost.stderr
    assert "no API key" in lost.stderr and "CHAINYARD_DATA_DIR" in lost.stderr
