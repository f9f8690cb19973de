"""`client.development` (both clients) against a live server: patches and their history.

The development deployment is made by marking a pushed deployment's row, unless the server's
manifest knows `development` (the development push)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile

import pytest

from chainyard.schemas import DeployManifest
from chainyard.sdk import AsyncClient, Client, Conflict, Invalid, NotFound
from chainyard.store.chains import ChainDeployment
from tests.sdk.live import LiveServer, hello_manifest


def tgz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _manifest(name: str) -> dict[str, object]:
    return {**hello_manifest(name, environment=None), "source_file": "chain.py"}


def _development(client: Client, live: LiveServer, name: str) -> tuple[str, str]:
    """(chain id, base digest) of a new development deployment."""
    source = tgz({"chain.py": b"v1\n", "util.py": b"x = 1\n"})
    deployed = client.chains.deploy(_manifest(name), source=source)
    with live.core.db.write() as session:
        row = session.get(ChainDeployment, deployed.chain_deployment.id)
        assert row is not None
        row.is_development = True
    return deployed.chain_id, hashlib.sha256(source).hexdigest()


def test_patch_and_history(client: Client, live: LiveServer, name: str) -> None:
    chain_id, base = _development(client, live, name)
    with pytest.raises(Conflict) as mismatch:
        client.development.patch(chain_id, base_digest="0" * 64, files=tgz({"a.py": b""}))
    assert mismatch.value.code == "PATCH_BASE_MISMATCH"
    first = client.development.patch(
        chain_id, base_digest=base, files=tgz({"chain.py": b"v2\n"}), deleted=["util.py"]
    )
    assert (first.status, first.kind, first.revision) == ("APPLYING", "code", 1)
    assert (first.changed_paths, first.deleted_paths) == (["chain.py"], ["util.py"])
    manifest = _manifest(name)
    manifest["chainlets"][1]["pip_requirements"] = ["numpy"]  # type: ignore[index]
    second = client.development.patch(
        chain_id, base_digest=first.artifact_digest, manifest=manifest, chainlets=["RandInt"]
    )
    assert (second.kind, second.chainlets) == ("requirements", ["RandInt"])
    assert [p.id for p in client.development.patches(chain_id)] == [second.id, first.id]
    assert client.development.get_patch(chain_id, first.id) == first
    with pytest.raises(Invalid) as refused:
        client.development.patch(chain_id, base_digest=None, chainlets=["Nope"])
    assert refused.value.code == "UNKNOWN_CHAINLET"
    with pytest.raises(NotFound):
        client.development.get_patch(chain_id, "nosuchpatch")


def test_the_async_client(client: Client, live: LiveServer, name: str) -> None:
    chain_id, base = _development(client, live, name)

    async def scenario() -> None:
        async with AsyncClient(live.url, live.key, timeout=30) as aio:
            patch = await aio.development.patch(
                chain_id, base_digest=base, files=tgz({"chain.py": b"v1\n"})
            )
            assert patch.status == "SKIPPED" and patch.artifact_digest == base
            assert await aio.development.get_patch(chain_id, patch.id) == patch
            assert [p.id for p in await aio.development.patches(chain_id, limit=5)] == [patch.id]

    asyncio.run(scenario())


@pytest.mark.skipif(
    "development" not in DeployManifest.model_fields,
    reason="the development push (manifest `development`) is another part of issue 18",
)
def test_push_makes_a_development_deployment(client: Client, name: str) -> None:
    source = tgz({"chain.py": b"v1\n"})
    pushed = client.development.push(_manifest(name), source=source)
    patch = client.development.patch(
        pushed.chain_id,
        base_digest=hashlib.sha256(source).hexdigest(),
        files=tgz({"chain.py": b"v2\n"}),
    )
    assert patch.chain_deployment_id == pushed.chain_deployment.id
