"""Packing a chain's directory into the archive that `push` uploads."""

from __future__ import annotations

import io
import os
import pathlib
import tarfile

import pathspec

MAX_ARCHIVE_BYTES = 100 * 1024 * 1024
# The server's limit (archives.MAX_ENTRIES): files and the folders their paths imply.
MAX_ENTRIES = 10_000
# Larger files are streamed into the archive rather than read into memory first.
_READ_WHOLE_BYTES = 16 * 2**20
# Never worth shipping: version control, caches, virtualenvs, chainyard's own data dir, and
# editors' swap, backup and lock files (which `push --watch` would otherwise send on every
# keystroke pause: truss's default ignore list has `*.swp` too).
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
    "*.sw[a-px]",
    "*~",
    ".#*",
    "*___jb_tmp___",
    "*___jb_old___",
]


class PackagingError(Exception):
    pass


class IgnoreRules:
    """Which paths under a chain's folder are not shipped: ALWAYS_IGNORED, then the patterns of
    its .truss_ignore and .gitignore. Read once: a changed ignore file needs a new instance."""

    def __init__(self, root: pathlib.Path) -> None:
        lines = list(ALWAYS_IGNORED)
        for name in (".truss_ignore", ".gitignore"):
            path = root / name
            if path.is_file():
                lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
        self._spec = pathspec.PathSpec.from_lines("gitignore", lines)

    def ignores_dir(self, rel: str) -> bool:
        return self._spec.match_file(rel + "/")

    def ignores(self, rel: str) -> bool:
        """Whether the file at `rel` (posix, relative to the root) is left out, itself or
        through one of its folders (as in git, a pattern cannot bring back a file of an ignored
        folder)."""
        return self._spec.match_file(rel) or any(self.ignores_dir(p) for p in _parents(rel))


def included_files(root: pathlib.Path) -> list[pathlib.Path]:
    rules = IgnoreRules(root)
    files = []
    # Ignored folders are not entered: a virtualenv or a data folder inside the chain's folder
    # would otherwise be walked file by file, and `watch` walks the tree on every change.
    for folder, dirnames, filenames in os.walk(root):
        here = pathlib.Path(folder)
        prefix = here.relative_to(root).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        dirnames[:] = [
            d for d in dirnames if not (here / d).is_symlink() and not rules.ignores_dir(prefix + d)
        ]
        for name in filenames:
            path = here / name
            if path.is_symlink():
                continue  # links are refused by the server; leave them out rather than fail
            if not rules.ignores(prefix + name):
                files.append(path)
    return sorted(files)


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def pack(root: pathlib.Path) -> bytes:
    """The directory as .tar.gz bytes, with limits on size and file count."""
    return archive(root, included_files(root))


def archive(root: pathlib.Path, files: list[pathlib.Path]) -> bytes:
    """`files` (under `root`) as .tar.gz bytes, named relative to `root`, with the server's
    limits on size and entry count: a whole tree (`pack`) or the files a live patch sends."""
    folders = {p for f in files for p in _parents(f.relative_to(root).as_posix())}
    entries = len(files) + len(folders)
    if entries > MAX_ENTRIES:
        raise PackagingError(
            f"{root} has {entries} files and folders to ship; the limit is {MAX_ENTRIES}"
        )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in files:
            with open(path, "rb") as f:
                info = tar.gettarinfo(arcname=path.relative_to(root).as_posix(), fileobj=f)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if info.size > _READ_WHOLE_BYTES:
                    tar.addfile(info, f)
                else:
                    # Read once, and sized by what was read: a source file saved again meanwhile
                    # (the watcher packs while an editor writes) is shipped whole, never cut.
                    data = f.read()
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
            if buffer.tell() > MAX_ARCHIVE_BYTES:
                raise PackagingError(
                    f"{root} packs to more than {MAX_ARCHIVE_BYTES // 2**20} MiB; list large files "
                    "in .truss_ignore"
                )
    return buffer.getvalue()
