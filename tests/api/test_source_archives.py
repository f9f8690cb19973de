"""A source archive is checked before anything is written: links, paths out of the folder, a
missing chain file or a non-archive are each a 400 that says what is wrong."""

from __future__ import annotations

import io
import json
import tarfile
import uuid

import pytest

from tests.support.server import Api, hello_manifest


@pytest.fixture(scope="module")
def api(shared_api: Api) -> Api:
    return shared_api


def archive(*members: tarfile.TarInfo, content: bytes = b"x = 1\n") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info in members:
            if info.isfile():
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def link(name: str, target: str, *, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    return info


def push(api: Api, source: bytes, source_file: str | None = "chain.py") -> tuple[str, object]:
    name = f"arch-{uuid.uuid4().hex[:8]}"
    manifest = {**hello_manifest(name), "source_file": source_file}
    response = api.post(
        "/v1/chains/deploy",
        data={"manifest": json.dumps(manifest)},
        files={"source": ("s.tar.gz", source, "application/gzip")},
    )
    return name, response


def chain_names(api: Api) -> set[str]:
    return {c["name"] for c in api.get("/v1/chains").json()["chains"]}


@pytest.mark.parametrize(
    ("members", "needle"),
    [
        ([file("chain.py"), link("evil", "/etc/passwd")], "link"),
        ([file("chain.py"), link("hard", "chain.py", hard=True)], "link"),
        ([file("chain.py"), file("../escape.py")], "leaves"),
        ([file("chain.py"), file("/abs.py")], "absolute"),
        ([file("other.py")], "chain.py"),
    ],
    ids=["symlink", "hardlink", "dotdot", "absolute", "missing-source-file"],
)
def test_unsafe_archives_are_refused(api: Api, members: list[tarfile.TarInfo], needle: str) -> None:
    name, response = push(api, archive(*members))
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["code"] == "INVALID_ARCHIVE"
    assert needle in body["error"]
    assert name not in chain_names(api)


def test_not_an_archive_is_refused(api: Api) -> None:
    name, response = push(api, b"this is not gzip")
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert name not in chain_names(api)


def test_archive_needs_source_file_and_source_file_needs_archive(api: Api) -> None:
    name, response = push(api, archive(file("chain.py")), source_file=None)
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert "source_file" in response.json()["error"]  # type: ignore[attr-defined]
    manifest = {**hello_manifest(f"x-{uuid.uuid4().hex[:6]}"), "source_file": "chain.py"}
    alone = api.post("/v1/chains/deploy", json=manifest)
    assert alone.status_code == 400
    assert "archive" in alone.json()["error"]
    assert name not in chain_names(api)


def folder(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def stored_archives(api: Api) -> set[str]:
    return {p.name for p in (api.config.data_dir / "artifacts").rglob("*") if p.is_file()}


def test_folders_count_toward_the_entry_limit(api: Api) -> None:
    """10,000 folders and the chain file: one entry too many (folders once went uncounted)."""
    before = stored_archives(api)
    name, response = push(api, archive(file("chain.py"), *(folder(f"d{i}") for i in range(10_000))))
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["code"] == "INVALID_ARCHIVE"
    assert "more than 10000 entries (files and folders)" in body["error"]
    assert name not in chain_names(api)
    assert stored_archives(api) == before

    # Exactly at the limit is accepted.
    name, response = push(api, archive(file("chain.py"), *(folder(f"d{i}") for i in range(9_999))))
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]


def test_folders_a_path_implies_count_too(api: Api) -> None:
    # 101 files, each 99 folders deep: no folder member, yet 10,100 folders when extracted.
    deep = "/".join(f"f{j}" for j in range(98))
    members = [file("chain.py"), *(file(f"top{i}/{deep}/m.py") for i in range(101))]
    name, response = push(api, archive(*members))
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    assert "more than 10000 entries" in response.json()["error"]  # type: ignore[attr-defined]
    assert name not in chain_names(api)


def test_a_refused_archive_keeps_the_same_bytes_stored_for_another_deployment(api: Api) -> None:
    """The same archive with a source_file it lacks is refused; the copy an earlier deployment
    uses stays."""
    source = archive(file("chain.py"), file("pkg/util.py"))
    _, ok = push(api, source)
    assert ok.status_code == 200, ok.text  # type: ignore[attr-defined]
    stored = stored_archives(api)
    _, refused = push(api, source, source_file="missing.py")
    assert refused.status_code == 400  # type: ignore[attr-defined]
    assert stored_archives(api) == stored


def named(name: str, **options: object) -> bytes:
    """An archive of chain.py and one file called `name`, written as tarfile can (PAX keeps a
    NUL or a newline; GNU with surrogateescape writes bytes that are not UTF-8)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", **options) as tar:  # type: ignore[call-overload]
        for member in ("chain.py", name):
            info = tarfile.TarInfo(member)
            info.size = 6
            tar.addfile(info, io.BytesIO(b"x = 1\n"))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "options", "needle"),
    [
        ("a" * 256 + ".py", {}, "a file or folder name of 259 bytes"),
        ("pkg/" + "é" * 128 + "/m.py", {}, "a file or folder name of 256 bytes"),
        ("/".join(["d" * 200] * 6) + "/m.py", {}, "has a path of 1210 bytes"),
        ("é\x00x.py", {}, "NUL byte"),
        ("a\nb.py", {}, "control character '\\n'"),
        (
            "\udcff.py",
            {"format": tarfile.GNU_FORMAT, "errors": "surrogateescape"},
            "not valid UTF-8",
        ),
    ],
    ids=["long-name", "long-multibyte-name", "long-path", "nul", "newline", "not-utf8"],
)
def test_names_the_filesystem_cannot_create_are_refused_at_deploy(
    api: Api, name: str, options: dict[str, object], needle: str
) -> None:
    before = stored_archives(api)
    chain, response = push(api, named(name, **options))
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["code"] == "INVALID_ARCHIVE"
    assert needle in body["error"]
    assert "archive member" in body["error"]
    assert chain not in chain_names(api)
    assert stored_archives(api) == before


def test_long_names_within_the_limits_are_accepted(api: Api) -> None:
    name = "pkg/" + "é" * 127 + "/" + "m" * 252 + ".py"  # 254 and 255 bytes
    _, response = push(api, named(name))
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
