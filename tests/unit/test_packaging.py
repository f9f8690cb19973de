"""What `push` ships: the chain's folder minus ignored files, within limits."""

from __future__ import annotations

import io
import pathlib
import tarfile

import pytest

from chainyard.chains import packaging


def names(data: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name for m in tar.getmembers()}


def test_ignores_caches_vcs_and_listed_patterns(tmp_path: pathlib.Path) -> None:
    (tmp_path / "chain.py").write_text("x = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "util.py").write_text("y = 2\n")
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "util.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref\n")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "big.bin").write_bytes(b"\1" * 1000)
    (tmp_path / "notes.tmp").write_text("scratch")
    (tmp_path / ".truss_ignore").write_text("weights/\n")
    (tmp_path / ".gitignore").write_text("*.tmp\n")
    (tmp_path / "link.py").symlink_to(tmp_path / "chain.py")
    shipped = names(packaging.pack(tmp_path))
    assert shipped == {"chain.py", "pkg/util.py", ".truss_ignore", ".gitignore"}


def test_too_many_files_is_refused(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packaging, "MAX_ENTRIES", 3)
    for i in range(4):
        (tmp_path / f"m{i}.py").write_text("")
    with pytest.raises(packaging.PackagingError, match="4 files and folders"):
        packaging.pack(tmp_path)


def test_folders_count_toward_the_limit(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on the server: two files in two nested folders are four entries.
    monkeypatch.setattr(packaging, "MAX_ENTRIES", 3)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "chain.py").write_text("")
    (tmp_path / "a" / "x.py").write_text("")
    with pytest.raises(packaging.PackagingError, match="4 files and folders"):
        packaging.pack(tmp_path)


def test_too_large_is_refused(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packaging, "MAX_ARCHIVE_BYTES", 1000)
    import os

    (tmp_path / "random.bin").write_bytes(os.urandom(50_000))
    with pytest.raises(packaging.PackagingError, match="MiB"):
        packaging.pack(tmp_path)
