"""An operator-configured interpreter (`--python VERSION=PATH`, here CHAINYARD_PYTHONS) runs the
chainlets whose base image asks for that Python: their environment is built on it."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import LiveServer, _free_port
from tests.e2e.test_image_settings import _logs, _wheel
from tests.e2e.test_local_chains import pushed, run_remote

VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def configured_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("pythons")
    server = LiveServer(
        data_dir=root / "data",
        port=_free_port(),
        log=root / "server.log",
        env={"CHAINYARD_PYTHONS": f"{VERSION}={sys.executable}"},
    )
    server.start()
    yield server
    server.stop()


def test_configured_interpreter_builds_and_runs_the_chainlet(
    configured_server: LiveServer, tmp_path: pathlib.Path
) -> None:
    _wheel(tmp_path / "wheels", "cy_onconfigured", 'VALUE = "installed"\n')
    (tmp_path / "requirements.txt").write_text("./wheels/cy_onconfigured-0.1-py3-none-any.whl\n")
    (tmp_path / "chain.py").write_text(
        "import sys\n\nimport truss_chains as chains\n\n\n"
        "class OnConfigured(chains.ChainletBase):\n"
        "    remote_config = chains.RemoteConfig(\n"
        "        docker_image=chains.DockerImage(\n"
        f"            base_image=chains.CustomImage(image='python:{VERSION}-slim'),\n"
        "            requirements_file=chains.make_abs_path_here('requirements.txt'),\n"
        "        )\n"
        "    )\n\n"
        "    def run_remote(self) -> list[str]:\n"
        "        import cy_onconfigured\n\n"
        "        return [cy_onconfigured.VALUE, sys.prefix]\n"
    )
    out = pushed(configured_server, tmp_path / "chain.py", "--promote", "--wait")
    response = run_remote(configured_server, out["chain_id"], {})
    assert response.status_code == 200, response.text
    value, prefix = response.json()
    assert value == "installed"
    assert pathlib.Path(prefix).parent == (configured_server.data_dir / "envs").resolve()
    messages = [line["message"] for line in _logs(configured_server, out)]
    assert f"building on {sys.executable} (Python {VERSION})" in messages
    # The custom image itself is not pulled, and the build log says so.
    assert any("python:" in m and "is not pulled" in m for m in messages)
