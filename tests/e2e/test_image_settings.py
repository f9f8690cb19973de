"""Image settings, assets and options of `remote_config` are honoured or refused at push, never
ignored (issue 15, item 4): a real server, real builds."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import pathlib
import shutil
import sys
import threading
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import LiveServer, wait_for
from tests.e2e.test_local_chains import pushed, run_remote

CHAINS = pathlib.Path(__file__).parent / "chains"
SERVER_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"

pytestmark = pytest.mark.slow


def _wheel(folder: pathlib.Path, name: str, source: str) -> pathlib.Path:
    """A pure-Python wheel written by hand: pip installs it with no index and no build step."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-0.1.dist-info"
    files = {
        f"{name}/__init__.py": source,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: chainyard-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return wheel


@pytest.fixture(scope="module")
def files_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A public http server for Assets.external_data."""
    root = tmp_path_factory.mktemp("public")
    (root / "blob.txt").write_text("downloaded at build\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _logs(server: LiveServer, out: dict[str, str]) -> list[dict[str, Any]]:
    chain_id, deployment_id = out["chain_id"], out["chain_deployment_id"]
    with server.client() as client:
        deployment = client.get(f"/v1/chains/{chain_id}/deployments/{deployment_id}").json()
        chainlet = deployment["chainlets"][0]
        path = f"/v1/chains/{chain_id}/deployments/{deployment_id}/chainlets/{chainlet['id']}/logs"
        logs: list[dict[str, Any]] = client.get(path, params={"limit": 1000}).json()["logs"]
        return logs


def test_every_honoured_setting_reaches_the_chainlet(
    live_server: LiveServer, files_server: str, tmp_path: pathlib.Path
) -> None:
    source = tmp_path / "image_settings"
    shutil.copytree(CHAINS / "image_settings", source)
    on_ray = live_server.runtime == "ray"
    if on_ray:
        # pip runs on each Ray node, away from the source: no local paths there.
        (source / "requirements.txt").write_text("# no local wheel on Ray\n")
    else:
        _wheel(source / "wheels", "cy_tinypkg", 'VALUE = "from requirements_file"\n')
    chain = source / "chain.py"
    chain.write_text(chain.read_text().replace("EXTERNAL_URL", f"{files_server}/blob.txt"))

    result = live_server.push(chain, "--promote", "--wait")
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # No Python 3.10 on this host (nor configured): the push says which Python runs instead.
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    python_warning = next(w for w in warnings if "base_image py310" in w)
    assert f"Python {SERVER_PYTHON}" in python_warning and "instead" in python_warning

    response = run_remote(live_server, out["chain_id"], {})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "at_import": "hi",
        "at_call": "hi",
        "data_dir": "hello from data_dir",
        "external_data": "downloaded at build",
        "requirements_file": "not installed" if on_ray else "from requirements_file",
        "external_package_dirs": "from external_package_dirs",
        "python": SERVER_PYTHON,
    }
    logs = _logs(live_server, out)
    python_lines = [line for line in logs if "base_image py310" in line["message"]]
    assert python_lines and python_lines[0]["level"] == "WARNING"
    messages = "\n".join(line["message"] for line in logs)
    where = "the Ray node" if on_ray else "this host"
    assert f"apt packages installed on {where}: coreutils" in messages
    # ChainletOptions.metadata is kept with the chainlet and shown in its build log.
    assert 'metadata (ChainletOptions.metadata): {"owner": "search-team"}' in messages


def _chain_with(
    tmp_path: pathlib.Path, name: str, remote_config: str, files: dict[str, str]
) -> pathlib.Path:
    folder = tmp_path / name
    folder.mkdir()
    for file, text in files.items():
        (folder / file).write_text(text)
    (folder / "chain.py").write_text(
        "import truss_chains as chains\n"
        "from truss.base import truss_config\n\n\n"
        f"class {name}(chains.ChainletBase):\n"
        f"    remote_config = chains.RemoteConfig({remote_config})\n\n"
        "    def run_remote(self) -> str:\n"
        "        return 'ok'\n"
    )
    return folder / "chain.py"


# Every refusal's message is checked by tests/api/test_deploy.py; these go through `chainyard
# push`, which reads the setting from the chain.
REFUSED = {
    "Cached": (
        "assets=chains.Assets(cached=["
        "truss_config.ModelRepo(repo_id='org/model', use_volume=False)])",
        {},
        "Assets.cached",
    ),
    "UvLock": (
        "docker_image=chains.DockerImage(requirements_file=chains.make_abs_path_here('uv.lock'))",
        {"uv.lock": "version = 1\n"},
        "DockerImage.requirements_file",
    ),
    "NewPython": (
        "docker_image=chains.DockerImage(base_image=chains.CustomImage(image='python:3.99-slim'))",
        {},
        "DockerImage.base_image",
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_setting_chainyard_cannot_honour_is_refused_at_push(
    live_server: LiveServer, tmp_path: pathlib.Path, name: str
) -> None:
    config, files, field = REFUSED[name]
    result = live_server.push(_chain_with(tmp_path, name, config, files), "--name", name.lower())
    assert result.returncode != 0, result.stdout
    message = " ".join(result.stderr.split())
    assert f"chainlet '{name}'" in message and field in message, message
    with live_server.client() as client:
        chains = client.get("/v1/chains").json()["chains"]
    assert name.lower() not in [c["name"] for c in chains]


def test_missing_apt_package_fails_the_build_naming_it(
    live_server: LiveServer, tmp_path: pathlib.Path
) -> None:
    chain = _chain_with(
        tmp_path,
        "NeedsApt",
        "docker_image=chains.DockerImage(apt_requirements=['coreutils', 'chainyard-no-such-deb'])",
        {},
    )
    result = live_server.push(chain, "--name", "needs-apt", "--wait", "--timeout", "120")
    assert result.returncode != 0
    assert "BUILD_FAILED" in result.stderr
    if live_server.runtime == "ray":
        assert "apt packages not installed on the Ray nodes: chainyard-no-such-deb;" in (
            result.stderr
        )
    else:
        assert "apt packages not installed on this host: chainyard-no-such-deb." in result.stderr
        assert "--install-apt-packages" in result.stderr


def test_pyproject_requirements_file_installs_its_dependencies(
    live_server: LiveServer, tmp_path: pathlib.Path
) -> None:
    # `packaging` is in the server's environment: the local build has nothing to install, and
    # says so; on Ray, the build names it as what pip installs on the nodes.
    chain = _chain_with(
        tmp_path,
        "Project",
        "docker_image=chains.DockerImage("
        "requirements_file=chains.make_abs_path_here('pyproject.toml'))",
        {"pyproject.toml": '[project]\nname = "p"\nversion = "1"\ndependencies = ["packaging"]\n'},
    )
    out = pushed(live_server, chain, "--name", "project", "--wait")
    assert out["status"] == "ACTIVE"

    expected = (
        "pip install packaging"
        if live_server.runtime == "ray"
        else "requirements satisfied by the server's environment"
    )

    def satisfied() -> bool:
        return any(expected in line["message"] for line in _logs(live_server, out))

    wait_for(satisfied, what="the build's requirements line")


def test_packages_of_truss_serving_image_are_importable_unlisted(live_server: LiveServer) -> None:
    out = pushed(live_server, CHAINS / "baseline_imports.py", "--name", "baseline", "--wait")
    with live_server.client() as client:
        response = client.post(
            f"/chains/{out['chain_id']}/deployment/{out['chain_deployment_id']}/run_remote",
            json={},
        )
    assert response.status_code == 200, response.text
    assert response.json()[-1] == "[0, 1, 2]"
    warnings = [line["message"] for line in _logs(live_server, out) if line["level"] == "WARNING"]
    assert not warnings, warnings
