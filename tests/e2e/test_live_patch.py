"""Live patches of a development deployment on a real server (docs/development.md), through the
API as `chainyard push --watch` sends them: the next call after a code patch answers with the new
code, and calls made meanwhile all succeed; a broken patch fails, says why in the patch and the
chainlet's logs, and the last good code keeps serving; a changed requirement rebuilds first; a
changed set of chainlets is refused. On the local runtime and on the Ray runtime (the two-node
cluster of the test session), as `live_server` runs the other end-to-end modules."""

from __future__ import annotations

import hashlib
import io
import pathlib
import tarfile
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chainyard.chains.discovery import discover
from chainyard.chains.packaging import pack
from chainyard.schemas import Patch
from chainyard.sdk import Client, Invalid
from tests.e2e.conftest import KEY, LiveServer, _free_port, wait_for

pytestmark = pytest.mark.slow

CHAIN = """
import truss_chains as chains

VERSION = "{version}"


class Dep(chains.ChainletBase):
    remote_config = chains.RemoteConfig(
        docker_image=chains.DockerImage(pip_requirements={requirements})
    )

    async def run_remote(self, x: int) -> str:
        return VERSION + ":" + str(x)


@chains.mark_entrypoint
class Entry(chains.ChainletBase):
    def __init__(self, dep: Dep = chains.depends(Dep)) -> None:
        self._dep = dep

    async def run_remote(self, x: int) -> str:
        return "entry-" + VERSION + "/" + await self._dep.run_remote(x)
"""
# The chain with one more chainlet, which Entry now depends on.
EXTRA = CHAIN.replace(
    "class Dep(chains.ChainletBase):",
    "class Extra(chains.ChainletBase):\n"
    "    async def run_remote(self) -> str:\n"
    '        return "extra"\n\n\n'
    "class Dep(chains.ChainletBase):",
).replace(
    "dep: Dep = chains.depends(Dep)) -> None:",
    "dep: Dep = chains.depends(Dep), extra: Extra = chains.depends(Extra)) -> None:",
)


def chain_text(version: str, requirements: list[str] | None = None) -> str:
    return CHAIN.format(version=version, requirements=repr(requirements or []))


def answer(version: str) -> str:
    return f"entry-{version}/{version}:1"


def tgz(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def manifest_of(chain_file: pathlib.Path, name: str) -> dict[str, Any]:
    info = discover(chain_file, None)
    return {
        "chain_name": name,
        "entrypoint": info.entrypoint,
        "source_file": chain_file.name,
        "chainlets": [c.manifest() for c in info.chainlets],
    }


@pytest.fixture(scope="module", params=["local", pytest.param("ray", marks=pytest.mark.ray)])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("patch")
    live = LiveServer(data_dir=root / "data", port=_free_port(), log=root / "server.log")
    if request.param == "ray":
        live.runtime = "ray"
        live.ray = request.getfixturevalue("ray_cluster")
    live.start()
    yield live
    live.stop()


class Caller:
    """Calls `/development/run_remote` back to back in a thread, keeping every outcome."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.outcomes: list[tuple[int, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Caller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        with httpx.Client(headers={"Authorization": f"Api-Key {KEY}"}, timeout=60) as client:
            while not self._stop.is_set():
                try:
                    got = client.post(self.url, json={"x": 1})
                    self.outcomes.append((got.status_code, got.json()))
                except httpx.HTTPError as exc:
                    self.outcomes.append((0, repr(exc)))


def finished(client: Client, chain_id: str, patch: Patch) -> Patch:
    def done() -> Patch | None:
        found = client.development.get_patch(chain_id, patch.id)
        return None if found.status == "APPLYING" else found

    result: Patch = wait_for(done, timeout=300, what=f"patch {patch.revision} to finish")
    return result


def call(url: str) -> Any:
    got = httpx.post(url, json={"x": 1}, headers={"Authorization": f"Api-Key {KEY}"}, timeout=60)
    assert got.status_code == 200, got.text
    return got.json()


def test_live_patches(server: LiveServer, tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "chain"
    folder.mkdir()
    chain_file = folder / "chain.py"
    chain_file.write_text(chain_text("v1"))
    source = pack(folder)
    with Client(server.url, api_key=KEY) as client:
        pushed = client.development.push(manifest_of(chain_file, "patched"), source=source)
        chain_id = pushed.chain_id
        assert pushed.chain_deployment.is_development
        wait_for(
            lambda: (
                client.deployments.get(chain_id, pushed.chain_deployment.id).status.value
                == "ACTIVE"
            ),
            timeout=300,
            what="the development deployment to be active",
        )
        url = f"{server.url}/chains/{chain_id}/development/run_remote"
        assert call(url) == answer("v1")
        base = hashlib.sha256(source).hexdigest()

        # A code patch, with calls going on all along: none fails, and once the patch is done
        # every answer is the new code's.
        with Caller(url) as caller:
            wait_for(lambda: len(caller.outcomes) >= 5, what="calls before the patch")
            patch = client.development.patch(
                chain_id, base_digest=base, files=tgz({"chain.py": chain_text("v2")})
            )
            assert (patch.kind, patch.chainlets) == ("code", ["Dep", "Entry"])
            done = finished(client, chain_id, patch)
            assert done.status == "SUCCEEDED", done.message
            assert done.duration_ms is not None
            assert call(url) == answer("v2")
            during = len(caller.outcomes)
            wait_for(lambda: len(caller.outcomes) >= during + 5, what="calls after the patch")
        failed_calls = [o for o in caller.outcomes if o[0] != 200]
        assert not failed_calls, failed_calls[:5]
        answers = [o[1] for o in caller.outcomes]
        # Each chainlet switches when its own new replica is ready: for a moment the old Entry
        # may call the new Dep (as with truss's patches, which are per chainlet too).
        assert set(answers) <= {answer("v1"), answer("v2"), "entry-v1/v2:1", "entry-v2/v1:1"}
        assert answers[-1] == answer("v2")
        assert done.artifact_digest is not None
        base = done.artifact_digest

        # A broken patch: the patch fails and says why, the logs too, and v2 keeps serving.
        broken = client.development.patch(
            chain_id, base_digest=base, files=tgz({"chain.py": chain_text("v3") + "\ndef (:\n"})
        )
        outcome = finished(client, chain_id, broken)
        assert outcome.status == "FAILED"
        assert "SyntaxError" in (outcome.message or ""), outcome.message
        assert call(url) == answer("v2")
        deployment = client.deployments.get(chain_id, pushed.chain_deployment.id)
        entry = next(c for c in deployment.chainlets if c.name == "Entry")
        logs = client.deployments.logs(chain_id, deployment.id, entry.id, limit=500)
        assert any("SyntaxError" in line.message for line in logs.logs), [
            line.message for line in logs.logs
        ][-20:]

        # A changed requirement: rebuilt, then switched.
        chain_file.write_text(chain_text("v4", ["msgpack"]))
        rebuilt = client.development.patch(
            chain_id,
            base_digest=base,
            files=tgz({"chain.py": chain_file.read_text()}),
            manifest=manifest_of(chain_file, "patched"),
        )
        assert rebuilt.kind == "requirements"
        outcome = finished(client, chain_id, rebuilt)
        assert outcome.status == "SUCCEEDED", outcome.message
        assert call(url) == answer("v4")
        dep = next(c for c in deployment.chainlets if c.name == "Dep")
        logs = client.deployments.logs(chain_id, deployment.id, dep.id, limit=500)
        assert any("rebuild of Dep" in line.message for line in logs.logs)

        # Another chainlet: refused, nothing changes.
        chain_file.write_text(EXTRA.format(version="v5", requirements="[]"))
        with pytest.raises(Invalid) as refused:
            client.development.patch(
                chain_id,
                base_digest=outcome.artifact_digest,
                files=tgz({"chain.py": chain_file.read_text()}),
                manifest=manifest_of(chain_file, "patched"),
            )
        assert refused.value.code == "PATCH_REFUSED"
        assert "Extra" in str(refused.value)
        assert call(url) == answer("v4")
        history = client.development.patches(chain_id)
        assert [p.status for p in history] == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
