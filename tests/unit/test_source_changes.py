"""What the watcher sends: the files push would ship (its ignore rules), told apart by content,
and the archive of just the changed ones."""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import tarfile

from chainyard.chains import packaging
from chainyard.cli.source_changes import Changes, SourceTree, diff, digest


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        out = {}
        for m in tar.getmembers():
            f = tar.extractfile(m)
            assert f is not None
            out[m.name] = f.read()
        return out


def chain_folder(root: pathlib.Path) -> pathlib.Path:
    (root / "chain.py").write_text("x = 1\n")
    (root / "pkg").mkdir()
    (root / "pkg" / "util.py").write_text("y = 2\n")
    (root / "pkg" / "__pycache__").mkdir()
    (root / "pkg" / "__pycache__" / "util.cpython-311.pyc").write_bytes(b"\0")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref\n")
    (root / "weights" / "deep").mkdir(parents=True)
    (root / "weights" / "deep" / "big.bin").write_bytes(b"\1" * 100)
    (root / "notes.tmp").write_text("scratch")
    (root / ".truss_ignore").write_text("weights/\n")
    # A negation cannot bring back a file of an ignored folder (as in git).
    (root / ".gitignore").write_text("*.tmp\n!weights/deep/big.bin\n")
    (root / "link.py").symlink_to(root / "chain.py")
    # Editors' swap and backup files: never shipped, never a reason to patch.
    (root / ".chain.py.swp").write_bytes(b"\0")
    (root / "chain.py~").write_text("x = 0\n")
    return root


def test_the_tree_is_what_push_ships(tmp_path: pathlib.Path) -> None:
    root = chain_folder(tmp_path)
    tree = SourceTree(root).scan()
    assert set(tree) == {"chain.py", "pkg/util.py", ".truss_ignore", ".gitignore"}
    assert set(tree) == set(members(packaging.pack(root)))
    assert tree["chain.py"] == hashlib.sha256(b"x = 1\n").hexdigest()


def test_events_it_is_concerned_with(tmp_path: pathlib.Path) -> None:
    source = SourceTree(chain_folder(tmp_path))
    assert source.concerns(tmp_path / "chain.py")
    assert source.concerns(str(tmp_path / "pkg" / "new.py"))
    assert source.concerns(tmp_path / ".gitignore")
    assert not source.concerns(tmp_path / "pkg" / "__pycache__" / "util.cpython-311.pyc")
    assert not source.concerns(tmp_path / ".git" / "index")
    assert not source.concerns(tmp_path / "weights" / "deep" / "big.bin")
    assert not source.concerns(tmp_path / "notes.tmp")
    assert not source.concerns(tmp_path / ".chain.py.swx")
    assert not source.concerns(tmp_path / "pkg" / "util.py~")
    assert not source.concerns(tmp_path.parent / "elsewhere.py")
    assert not source.concerns(tmp_path)


def test_diff_by_content(tmp_path: pathlib.Path) -> None:
    root = chain_folder(tmp_path)
    source = SourceTree(root)
    before = source.scan()
    assert not diff(before, source.scan())

    (root / "chain.py").write_text("x = 2\n")  # same size, and likely the same mtime tick
    (root / "pkg" / "util.py").write_text("y = 2\n")  # saved again, unchanged
    (root / "pkg" / "more.py").write_text("z = 3\n")
    (root / ".truss_ignore").unlink()
    after = source.scan()
    changes = diff(before, after)
    # .truss_ignore gone: weights/ ships now (nothing else ignores it).
    assert changes == Changes(
        changed=["chain.py", "pkg/more.py", "weights/deep/big.bin"], deleted=[".truss_ignore"]
    )
    assert changes.paths == sorted(changes.changed + changes.deleted)


def test_an_ignore_rule_added_deletes_what_it_now_covers(tmp_path: pathlib.Path) -> None:
    root = chain_folder(tmp_path)
    source = SourceTree(root)
    before = source.scan()
    (root / ".gitignore").write_text("*.tmp\npkg/\n")
    changes = diff(before, source.scan())
    assert changes.changed == [".gitignore"]
    assert changes.deleted == ["pkg/util.py"]
    assert not source.concerns(root / "pkg" / "util.py")


def test_diff_from_nothing_is_every_file() -> None:
    tree = {"b.py": "1", "a.py": "2"}
    assert diff(None, tree) == Changes(changed=["a.py", "b.py"], deleted=[])
    assert diff(tree, {}) == Changes(changed=[], deleted=["a.py", "b.py"])
    assert not Changes(changed=[], deleted=[])


def test_the_hash_cache_sees_a_rewrite_with_the_same_size_and_mtime(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "chain.py"
    path.write_text("aaa\n")
    source = SourceTree(tmp_path)
    first = source.scan()
    stat = path.stat()
    path.write_text("bbb\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert diff(first, source.scan()).changed == ["chain.py"]


def test_the_archive_holds_the_changed_files_only(tmp_path: pathlib.Path) -> None:
    root = chain_folder(tmp_path)
    data = SourceTree(root).archive(["pkg/util.py", "chain.py"])
    assert members(data) == {"pkg/util.py": b"y = 2\n", "chain.py": b"x = 1\n"}


def test_a_push_digest_is_the_sha256_of_the_bytes_sent() -> None:
    assert digest(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_ignored_folders_ship_nothing_of_theirs(tmp_path: pathlib.Path) -> None:
    root = chain_folder(tmp_path)
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / ".venv" / "lib" / "x.py").write_text("")
    files = packaging.included_files(root)
    assert [f.relative_to(root).as_posix() for f in files] == sorted(
        [".gitignore", ".truss_ignore", "chain.py", "pkg/util.py"]
    )
