"""Packing a chain's directory into the archive that `push` uploads."""

from __future__ import annotations

import io
import pathlib
import tarfile

import pathspec

MAX_ARCHIVE_BYTES = 100 * 1024 * 1024
# The server's limit (archives.MAX_ENTRIES): files and the folders their paths imply.
MAX_ENTRIES = 10_000
# Never worth shipping: version control, caches, virtualenvs and chainyard's own data dir.
ALWAYS_IGNORED = [
    ".git/",
    ".hg/",
    "__pycache__/",
    "*.pyc",
    ".venv/",
    "venv/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".chainyard/",
    ".DS_Store",
]


class PackagingError(Exception):
    pass


def _ignore_spec(root: pathlib.Path) -> pathspec.PathSpec:  # type: ignore[type-arg]
    lines = list(ALWAYS_IGNORED)
    for name in (".truss_ignore", ".gitignore"):
        path = root / name
        if path.is_file():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.PathSpec.from_lines("gitignore", lines)


def included_files(root: pathlib.Path) -> list[pathlib.Path]:
    spec = _ignore_spec(root)
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            continue  # links are refused by the server; leave them out rather than fail
        if path.is_dir():
            continue
        if spec.match_file(rel) or any(spec.match_file(p + "/") for p in _parents(rel)):
            continue
        files.append(path)
    return files


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def pack(root: pathlib.Path) -> bytes:
    """The directory as .tar.gz bytes, with limits on size and file count."""
    files = included_files(root)
    folders = {p for f in files for p in _parents(f.relative_to(root).as_posix())}
    entries = len(files) + len(folders)
    if entries > MAX_ENTRIES:
        raise PackagingError(
            f"{root} has {entries} files and folders to ship; the limit is {MAX_ENTRIES}"
        )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in files:
            info = tar.gettarinfo(str(path), arcname=path.relative_to(root).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as f:
                tar.addfile(info, f)
            if buffer.tell() > MAX_ARCHIVE_BYTES:
                raise PackagingError(
                    f"{root} packs to more than {MAX_ARCHIVE_BYTES // 2**20} MiB; list large files "
                    "in .truss_ignore"
                )
    return buffer.getvalue()
