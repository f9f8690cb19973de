"""The source tree a live patch produces (domain/patch_tree.py) and its deterministic packing
(services/source_trees.py)."""

from __future__ import annotations

import hashlib
import io
import pathlib
import tarfile

import pytest

from chainyard.domain.patch_tree import (
    BASE,
    FILES,
    BadPath,
    FileEntry,
    build,
    check_path,
    differences,
    same,
)
from chainyard.services import source_trees


def entry(content: str, origin: str = BASE, *, executable: bool = False) -> FileEntry:
    return FileEntry(hashlib.sha256(content.encode()).hexdigest(), executable, origin)


BASE_TREE = {
    "chain.py": entry("v1"),
    "helpers/__init__.py": entry(""),
    "helpers/text.py": entry("def shout(s): ..."),
    "data/words.txt": entry("a b c"),
}


def test_an_incremental_patch_deletes_then_overlays() -> None:
    files = {"chain.py": entry("v2", FILES), "new.py": entry("x = 1", FILES)}
    tree = build(BASE_TREE, ["data/words.txt", "helpers/"], files, whole=False)
    assert list(tree) == ["chain.py", "new.py"]
    assert tree["chain.py"].origin == FILES
    assert differences(BASE_TREE, tree) == (
        ["chain.py", "new.py"],
        ["data/words.txt", "helpers/__init__.py", "helpers/text.py"],
    )


def test_a_whole_tree_replaces_the_base() -> None:
    files = {"chain.py": entry("v1", FILES)}
    tree = build(BASE_TREE, ["ignored.py"], files, whole=True)
    assert list(tree) == ["chain.py"]
    assert differences(BASE_TREE, tree)[0] == []


def test_deleting_what_the_base_lacks_deletes_nothing() -> None:
    assert same(build(BASE_TREE, ["nowhere.py", "no/such/folder"], {}, whole=False), BASE_TREE)


def test_a_file_replaces_a_folder_and_a_folder_a_file() -> None:
    tree = build(BASE_TREE, [], {"helpers": entry("now a file", FILES)}, whole=False)
    assert "helpers" in tree and not any(p.startswith("helpers/") for p in tree)
    tree = build(BASE_TREE, [], {"chain.py/inner.py": entry("x", FILES)}, whole=False)
    assert "chain.py" not in tree and "chain.py/inner.py" in tree


def test_the_patch_files_may_not_be_both_file_and_folder() -> None:
    with pytest.raises(BadPath, match="both a file and a folder"):
        build({}, [], {"a": entry("x", FILES), "a/b.py": entry("y", FILES)}, whole=True)


def test_same_compares_bytes_and_the_executable_bit_not_where_they_are() -> None:
    moved = {p: FileEntry(e.sha256, e.executable, FILES) for p, e in BASE_TREE.items()}
    assert same(BASE_TREE, moved)
    run = {**BASE_TREE, "chain.py": entry("v1", executable=True)}
    assert not same(BASE_TREE, run)
    assert differences(BASE_TREE, run) == (["chain.py"], [])


@pytest.mark.parametrize(
    "path",
    ["../x.py", "a/../../x.py", "/etc/passwd", "a//b", "./a", "a/./b", "a\\b", "", "a\nb"],
)
def test_paths_that_could_leave_the_tree_are_refused(path: str) -> None:
    with pytest.raises(BadPath):
        check_path(path)
    with pytest.raises(BadPath):
        build(BASE_TREE, [path], {}, whole=False)


def test_a_trailing_slash_names_a_folder() -> None:
    assert check_path("helpers/") == "helpers"
    assert check_path("a/b.py") == "a/b.py"


def _write(root: pathlib.Path, files: dict[str, bytes]) -> None:
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def test_packing_is_deterministic_and_keeps_contents(tmp_path: pathlib.Path) -> None:
    files = {"z.py": b"z = 1\n", "a/b.py": b"b = 2\n", "run.sh": b"#!/bin/sh\n"}
    one, two = tmp_path / "one", tmp_path / "two"
    _write(one, files)
    # The same files written in another order, at other times, with other modes on disk.
    _write(two, dict(reversed(files.items())))
    (one / "run.sh").chmod(0o755)
    (two / "run.sh").chmod(0o700)
    (two / "z.py").chmod(0o600)
    tree_one = source_trees.index(one, BASE)
    tree_two = source_trees.index(two, FILES)
    assert same(tree_one, tree_two)
    source_trees.pack(tree_one, {BASE: one}, tmp_path / "one.tar.gz")
    source_trees.pack(tree_two, {FILES: two}, tmp_path / "two.tar.gz")
    packed = (tmp_path / "one.tar.gz").read_bytes()
    assert packed == (tmp_path / "two.tar.gz").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(packed)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["a/b.py", "run.sh", "z.py"]
        assert [m.mode for m in members] == [0o644, 0o755, 0o644]
        extracted = tar.extractfile("a/b.py")
        assert extracted is not None and extracted.read() == b"b = 2\n"


def test_a_changed_file_gets_another_mtime() -> None:
    # Python trusts a cached .pyc whose source has the same mtime and size: a file whose bytes
    # changed (same size) must not keep its mtime.
    assert source_trees.mtime_of(entry("x = 1")) != source_trees.mtime_of(entry("x = 2"))
    assert source_trees.mtime_of(entry("x = 1")) == source_trees.mtime_of(entry("x = 1", FILES))
