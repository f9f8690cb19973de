"""Live patches of a development deployment (docs/development.md, "A patch"): the new tree, what
is refused (and then changes nothing), per-chainlet kinds, and the reconciler's end of a patch.

The development deployment is made here by marking a pushed deployment's row: the development
push is another part's."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import random
import tarfile
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from chainyard.services import artifacts, patches
from chainyard.store.chains import ChainDeployment, Chainlet
from chainyard.store.logs import ChainletLog
from chainyard.store.patches import DeploymentPatch
from tests.support.server import Api, hello_manifest

SOURCE = {
    "chain.py": b"import helpers\n",
    "helpers/__init__.py": b"",
    "helpers/text.py": b"def shout(s):\n    return s.upper()\n",
    "data/words.txt": b"a b c\n",
}


@pytest.fixture(scope="module")
def api(shared_api: Api) -> Api:
    return shared_api


def tgz(files: dict[str, bytes], *, order: list[str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in order or list(files):
            info = tarfile.TarInfo(path)
            info.size = len(files[path])
            tar.addfile(info, io.BytesIO(files[path]))
    return buffer.getvalue()


@dataclasses.dataclass
class Dev:
    chain_id: str
    deployment_id: str
    digest: str
    name: str


def manifest(name: str, **changes: Any) -> dict[str, Any]:
    """The hello chain as push builds it for a development deployment; `changes` per chainlet."""
    m = {**hello_manifest(name, environment=None), "source_file": "chain.py"}
    for c in m["chainlets"]:
        c.update(changes.get(c["name"], {}))
    return m


def push_development(api: Api, source: dict[str, bytes] = SOURCE) -> Dev:
    name = f"dev-{uuid.uuid4().hex[:8]}"
    archive = tgz(source)
    response = api.post(
        "/v1/chains/deploy",
        data={"manifest": json.dumps(manifest(name))},
        files={"source": ("s.tar.gz", archive, "application/gzip")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    with api.core.db.write() as session:
        row = session.get(ChainDeployment, body["chain_deployment"]["id"])
        assert row is not None
        row.is_development = True
    # The base digest of a push: the sha256 of the archive's bytes as uploaded.
    digest = hashlib.sha256(archive).hexdigest()
    return Dev(body["chain_id"], body["chain_deployment"]["id"], digest, name)


def send(
    api: Api,
    dev: Dev,
    *,
    base: str | None,
    files: dict[str, bytes] | bytes | None = None,
    deleted: list[str] | None = None,
    manifest: dict[str, Any] | None = None,
    chainlets: list[str] | None = None,
) -> httpx.Response:
    body = {
        "base_digest": base,
        "deleted": deleted or [],
        "manifest": manifest,
        "chainlets": chainlets,
    }
    path = f"/v1/chains/{dev.chain_id}/development/patch"
    if files is None:
        return api.post(path, json=body)
    archive = files if isinstance(files, bytes) else tgz(files)
    return api.post(
        path,
        data={"patch": json.dumps(body)},
        files={"files": ("files.tar.gz", archive, "application/gzip")},
    )


def accepted(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text
    message: str = response.json()["error"]
    return message


def tree_of(api: Api, digest: str) -> dict[str, bytes]:
    with tarfile.open(artifacts.path_of(api.core.data_dir, digest)) as tar:
        out = {}
        for member in tar.getmembers():
            f = tar.extractfile(member)
            assert f is not None
            out[member.name] = f.read()
        return out


def chainlets(api: Api, dev: Dev) -> dict[str, Chainlet]:
    with api.core.db.read() as session:
        rows = session.scalars(
            select(Chainlet).where(Chainlet.chain_deployment_id == dev.deployment_id)
        )
        return {c.name: c for c in rows}


def log_messages(api: Api, chainlet_id: str) -> list[str]:
    with api.core.db.read() as session:
        return list(
            session.scalars(
                select(ChainletLog.message).where(ChainletLog.chainlet_id == chainlet_id)
            )
        )


def patch_rows(api: Api, dev: Dev) -> list[DeploymentPatch]:
    with api.core.db.read() as session:
        return list(
            session.scalars(
                select(DeploymentPatch)
                .where(DeploymentPatch.chain_deployment_id == dev.deployment_id)
                .order_by(DeploymentPatch.revision)
            )
        )


def test_a_whole_tree_patch(api: Api) -> None:
    dev = push_development(api)
    new = {"chain.py": b"import helpers  # v2\n", "helpers/text.py": SOURCE["helpers/text.py"]}
    patch = accepted(send(api, dev, base=None, files=new))
    assert patch["status"] == "APPLYING" and patch["kind"] == "code"
    assert patch["revision"] == 1 and patch["chain_deployment_id"] == dev.deployment_id
    assert patch["chainlets"] == ["HelloWorld", "RandInt"]
    assert patch["changed_paths"] == ["chain.py"]
    assert patch["deleted_paths"] == ["data/words.txt", "helpers/__init__.py"]
    assert patch["finished_at"] is None and patch["duration_ms"] is None
    assert tree_of(api, patch["artifact_digest"]) == new
    rows = chainlets(api, dev)
    for row in rows.values():
        assert (row.artifact_digest, row.code_revision) == (patch["artifact_digest"], 1)
    (stored,) = patch_rows(api, dev)
    assert stored.previous == {
        row.id: {
            "artifact_digest": None,
            "pip_requirements": [],
            "image": row.image,
            "secret_keys": [],
            "code_revision": 0,
        }
        for row in rows.values()
    }


def test_an_incremental_patch_then_one_on_top_of_it(api: Api) -> None:
    dev = push_development(api)
    first = accepted(
        send(
            api,
            dev,
            base=dev.digest,
            files={"chain.py": b"v2\n", "extra.py": b"x = 1\n"},
            deleted=["helpers/", "nowhere.py"],
        )
    )
    assert first["changed_paths"] == ["chain.py", "extra.py"]
    assert first["deleted_paths"] == ["helpers/__init__.py", "helpers/text.py"]
    assert tree_of(api, first["artifact_digest"]) == {
        "chain.py": b"v2\n",
        "data/words.txt": b"a b c\n",
        "extra.py": b"x = 1\n",
    }
    # The first is still applying: the second starts from its tree, and supersedes it.
    second = accepted(send(api, dev, base=first["artifact_digest"], deleted=["extra.py"]))
    assert second["revision"] == 2 and second["deleted_paths"] == ["extra.py"]
    assert set(tree_of(api, second["artifact_digest"])) == {"chain.py", "data/words.txt"}
    one, two = patch_rows(api, dev)
    assert one.status == "FAILED" and one.message == "superseded by revision 2"
    # Should the second fail, the chainlets go back to what ran before the first.
    assert all(state["code_revision"] == 0 for state in two.previous.values())
    assert {r.code_revision for r in chainlets(api, dev).values()} == {2}


def test_the_same_tree_again_gives_the_same_digest(api: Api) -> None:
    dev = push_development(api)
    new = {**SOURCE, "chain.py": b"v2\n"}
    first = accepted(send(api, dev, base=None, files=new))
    back = accepted(send(api, dev, base=first["artifact_digest"], files={"chain.py": b"v1\n"}))
    again = accepted(
        send(api, dev, base=back["artifact_digest"], files=tgz(new, order=sorted(new)[::-1]))
    )
    assert again["artifact_digest"] == first["artifact_digest"] != back["artifact_digest"]


def test_a_base_the_deployment_does_not_run_is_409(api: Api) -> None:
    dev = push_development(api)
    message = refused(
        send(api, dev, base="0" * 64, files={"chain.py": b"v2\n"}), 409, "PATCH_BASE_MISMATCH"
    )
    assert dev.digest in message
    assert patch_rows(api, dev) == []
    # A failed patch's tree is not what runs either.
    patch = accepted(send(api, dev, base=dev.digest, files={"chain.py": b"v2\n"}))
    assert patches.fail(api.core, dev.deployment_id, 1, "ImportError: no module named x")
    refused(
        send(api, dev, base=patch["artifact_digest"], files={"chain.py": b"v3\n"}),
        409,
        "PATCH_BASE_MISMATCH",
    )
    accepted(send(api, dev, base=dev.digest, files={"chain.py": b"v3\n"}))


def test_identical_content_is_skipped(api: Api) -> None:
    dev = push_development(api)
    same = accepted(send(api, dev, base=dev.digest, files={"chain.py": SOURCE["chain.py"]}))
    assert same["status"] == "SKIPPED" and same["chainlets"] == []
    assert same["artifact_digest"] == dev.digest
    assert same["duration_ms"] == 0 and same["finished_at"] is not None
    whole = accepted(send(api, dev, base=None, files=tgz(SOURCE, order=sorted(SOURCE))))
    assert whole["status"] == "SKIPPED" and whole["revision"] == 2
    rows = chainlets(api, dev)
    assert {(r.artifact_digest, r.code_revision) for r in rows.values()} == {(None, 0)}


@pytest.mark.parametrize(
    ("change", "needles"),
    [
        (
            lambda m: m["chainlets"].append({"name": "Extra"}),
            ["set of Chainlet names differ", "added: Extra"],
        ),
        (
            lambda m: m.update(chainlets=[{"name": "HelloWorld"}]),
            ["set of Chainlet names differ", "removed: RandInt"],
        ),
        (
            lambda m: m.update(
                entrypoint="RandInt",
                chainlets=[
                    {"name": "HelloWorld"},
                    {"name": "RandInt", "dependencies": ["HelloWorld"]},
                ],
            ),
            ["entrypoint changes", "'HelloWorld' -> 'RandInt'"],
        ),
        (
            lambda m: m["chainlets"][1]["compute"].update(memory="4Gi"),
            ["chainlet 'RandInt'", "compute changed", "memory '2Gi' -> '4Gi'", "push again"],
        ),
        (
            lambda m: m["chainlets"][1].update(instance_type_id="4x16"),
            ["chainlet 'RandInt'", "instance type changed"],
        ),
    ],
    ids=["added", "removed", "entrypoint", "compute", "instance-type"],
)
def test_what_a_patch_cannot_change_is_refused_and_changes_nothing(
    api: Api, change: Any, needles: list[str]
) -> None:
    dev = push_development(api)
    m = manifest(dev.name)
    change(m)
    message = refused(
        send(api, dev, base=dev.digest, files={"chain.py": b"v2\n"}, manifest=m),
        400,
        "PATCH_REFUSED",
    )
    for needle in needles:
        assert needle in message
    assert patch_rows(api, dev) == []
    assert {r.code_revision for r in chainlets(api, dev).values()} == {0}


def test_a_requirement_change_is_a_requirements_patch_of_that_chainlet(api: Api) -> None:
    dev = push_development(api)
    m = manifest(dev.name, RandInt={"pip_requirements": ["numpy==2.1.0"]})
    patch = accepted(send(api, dev, base=dev.digest, manifest=m))
    # Same tree: only the chainlet whose settings changed is patched.
    assert patch["kind"] == "requirements" and patch["chainlets"] == ["RandInt"]
    assert patch["artifact_digest"] == dev.digest
    rows = chainlets(api, dev)
    assert rows["RandInt"].pip_requirements == ["numpy==2.1.0"]
    assert rows["RandInt"].code_revision == 1 and rows["HelloWorld"].code_revision == 0
    # Code and an image setting together: still a rebuild.
    m["chainlets"][0]["env_variables"] = {"MODE": "dev"}
    patch = accepted(send(api, dev, base=dev.digest, files={"chain.py": b"v2\n"}, manifest=m))
    assert patch["kind"] == "requirements" and patch["chainlets"] == ["HelloWorld", "RandInt"]
    assert chainlets(api, dev)["HelloWorld"].image == {"env": {"MODE": "dev"}}
    # The same manifest again, new code only: a code patch.
    patch = accepted(
        send(api, dev, base=patch["artifact_digest"], files={"chain.py": b"v3\n"}, manifest=m)
    )
    assert patch["kind"] == "code"


def test_chainlets_limits_what_is_patched(api: Api) -> None:
    dev = push_development(api)
    message = refused(
        send(api, dev, base=dev.digest, files={"chain.py": b"v2\n"}, chainlets=["Nope"]),
        400,
        "UNKNOWN_CHAINLET",
    )
    assert "'Nope'" in message
    patch = accepted(
        send(api, dev, base=dev.digest, files={"chain.py": b"v2\n"}, chainlets=["RandInt"])
    )
    assert patch["chainlets"] == ["RandInt"]
    rows = chainlets(api, dev)
    assert (rows["RandInt"].artifact_digest, rows["RandInt"].code_revision) == (
        patch["artifact_digest"],
        1,
    )
    assert (rows["HelloWorld"].artifact_digest, rows["HelloWorld"].code_revision) == (None, 0)
    # The deployment's tree is the patch's now; HelloWorld, still on the push's, is patched to it
    # by a patch of the same tree naming it.
    catch_up = accepted(send(api, dev, base=patch["artifact_digest"], chainlets=["HelloWorld"]))
    assert catch_up["status"] == "APPLYING" and catch_up["chainlets"] == ["HelloWorld"]
    # The first patch still moves RandInt: not superseded.
    assert [p.status for p in patch_rows(api, dev)] == ["APPLYING", "APPLYING"]


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"deleted": ["../outside.py"]}, "INVALID_PATH"),
        ({"deleted": ["/etc/passwd"]}, "INVALID_PATH"),
        ({"deleted": ["helpers/../../x"]}, "INVALID_PATH"),
        ({"files": {"../evil.py": b"x"}}, "INVALID_ARCHIVE"),
        ({"files": {"/abs.py": b"x"}}, "INVALID_ARCHIVE"),
        ({"files": b"not an archive"}, "INVALID_ARCHIVE"),
        ({"deleted": ["chain.py"]}, "PATCH_REFUSED"),
    ],
    ids=["dotdot", "absolute", "inner-dotdot", "file-dotdot", "file-absolute", "junk", "chain"],
)
def test_bad_paths_and_archives_are_refused(api: Api, kwargs: dict[str, Any], code: str) -> None:
    dev = push_development(api)
    refused(send(api, dev, base=dev.digest, **kwargs), 400, code)
    assert patch_rows(api, dev) == []


def test_bad_requests(api: Api) -> None:
    dev = push_development(api)
    path = f"/v1/chains/{dev.chain_id}/development/patch"
    refused(api.post(path, json={"deleted": []}), 400, "INVALID_PATCH")  # base_digest missing
    refused(api.post(path, json={"base_digest": "abc"}), 400, "INVALID_PATCH")
    other = {**manifest(dev.name), "chain_name": "someone-else"}
    refused(send(api, dev, base=dev.digest, manifest=other), 400, "INVALID_MANIFEST")
    with_env = {**manifest(dev.name), "environment": "production"}
    refused(send(api, dev, base=dev.digest, manifest=with_env), 400, "INVALID_MANIFEST")
    # Without a chain reference, and with a development push's flag: accepted.
    plain = manifest(dev.name)
    del plain["chain_name"]
    patch = accepted(
        send(api, dev, base=dev.digest, manifest={**plain, "development": True}, chainlets=None)
    )
    assert patch["status"] == "SKIPPED"


def test_a_chain_without_a_development_deployment_is_404(api: Api) -> None:
    chain_id = api.deploy(hello_manifest(f"pub-{uuid.uuid4().hex[:8]}", environment=None))[
        "chain_id"
    ]
    for response in (
        api.post(f"/v1/chains/{chain_id}/development/patch", json={"base_digest": None}),
        api.get(f"/v1/chains/{chain_id}/development/patches"),
    ):
        assert response.status_code == 404, response.text
    refused(api.get("/v1/chains/nochain/development/patches"), 404, "CHAIN_NOT_FOUND")


def test_succeed_and_fail(api: Api) -> None:
    dev = push_development(api)
    m = manifest(dev.name, RandInt={"pip_requirements": ["numpy"]})
    first = accepted(send(api, dev, base=dev.digest, files={"chain.py": b"v2\n"}, manifest=m))
    assert patches.succeed(api.core, dev.deployment_id, 1)
    assert not patches.succeed(api.core, dev.deployment_id, 1)
    assert not patches.fail(api.core, dev.deployment_id, 1, "too late")
    done = api.get(f"/v1/chains/{dev.chain_id}/development/patches/{first['id']}").json()
    assert done["status"] == "SUCCEEDED" and done["duration_ms"] is not None

    m["chainlets"][1]["pip_requirements"] = ["numpy", "pandas"]
    second = accepted(
        send(api, dev, base=first["artifact_digest"], files={"chain.py": b"v3\n"}, manifest=m)
    )
    assert patches.fail(api.core, dev.deployment_id, 2, "SyntaxError: invalid syntax")
    assert not patches.fail(api.core, dev.deployment_id, 2, "again")
    assert not patches.succeed(api.core, dev.deployment_id, 2)
    failed = api.get(f"/v1/chains/{dev.chain_id}/development/patches/{second['id']}").json()
    assert failed["status"] == "FAILED" and failed["message"] == "SyntaxError: invalid syntax"
    assert failed["finished_at"] is not None
    # Back to the first patch's code and requirements; every chainlet of the patch says so in
    # its logs, once, whichever replica failed (on Ray the others may still have been starting).
    rows = chainlets(api, dev)
    assert rows["RandInt"].pip_requirements == ["numpy"]
    line = "patch 2 failed: SyntaxError: invalid syntax; the previous code keeps serving"
    for row in rows.values():
        assert (row.artifact_digest, row.code_revision) == (first["artifact_digest"], 1)
        assert log_messages(api, row.id).count(line) == 1
    assert not patches.succeed(api.core, "nodeploy", 1)


def test_history(api: Api) -> None:
    dev = push_development(api)
    first = accepted(send(api, dev, base=dev.digest, files={"chain.py": b"v2\n"}))
    second = accepted(send(api, dev, base=first["artifact_digest"], files={"chain.py": b"v3\n"}))
    base = f"/v1/chains/{dev.chain_id}/development/patches"
    listed = api.get(base).json()["patches"]
    assert [p["id"] for p in listed] == [second["id"], first["id"]]
    assert [p["id"] for p in api.get(base, params={"limit": 1}).json()["patches"]] == [second["id"]]
    assert api.get(f"{base}/{first['id']}").json()["revision"] == 1
    refused(api.get(f"{base}/nosuchpatch"), 404, "PATCH_NOT_FOUND")
    # Another chain's patch is not found through this chain.
    other = push_development(api)
    refused(
        api.get(f"/v1/chains/{other.chain_id}/development/patches/{first['id']}"),
        404,
        "PATCH_NOT_FOUND",
    )


def test_a_patch_may_be_as_large_as_a_deploy(make_api: Any) -> None:
    api: Api = make_api(max_request_bytes=64 * 1024)
    dev = push_development(api)
    big = {"weights.bin": random.Random(7).randbytes(200 * 1024)}
    patch = accepted(send(api, dev, base=dev.digest, files=big))
    assert patch["changed_paths"] == ["weights.bin"]
    # Other management requests keep the server's limit.
    too_large = api.post("/v1/secrets", json={"name": "s", "value": "x" * 100 * 1024})
    assert too_large.status_code == 413
