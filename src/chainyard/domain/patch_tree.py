"""The source tree a live patch produces (docs/development.md, "A patch"), on indexes of files:
which file ends up at which path, and what changed. Pure: reading and packing archives is
`services/source_trees.py`.

A tree holds files only. Folders exist because files are in them (the archives `chainyard push`
packs name no folders), so an empty folder is not part of a tree, and two trees are the same when
they hold the same files with the same bytes and the same executable bit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

# Where a file's bytes come from when the new tree is packed.
BASE = "base"
FILES = "files"

MAX_PATH_BYTES = 1024


class BadPath(ValueError):
    """A path a patch names that is not one inside the tree; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class FileEntry:
    sha256: str
    executable: bool
    origin: str = BASE

    def same_bytes(self, other: FileEntry) -> bool:
        return self.sha256 == other.sha256 and self.executable == other.executable


Tree = Mapping[str, FileEntry]


def check_path(path: str) -> str:
    """A path inside the tree as archives name their members: relative, '/' between parts, no
    empty, '.' or '..' part. One trailing '/' (a folder) is dropped. Anything else is refused
    rather than normalised, so that a path can never reach outside the tree."""
    if not path:
        raise BadPath("a path is empty")
    shown = repr(path) if len(path) <= 80 else f"{path[:80]!r}..."
    name = path[:-1] if path.endswith("/") else path
    if name.startswith("/") or "\\" in name:
        raise BadPath(f"path {shown} is not a relative path with '/' separators")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise BadPath(f"path {shown} leaves the source tree or is not in canonical form")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise BadPath(f"path {shown} has a control character")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadPath(f"path {shown} is not valid UTF-8") from None
    if size > MAX_PATH_BYTES:
        raise BadPath(f"path {shown} is longer than {MAX_PATH_BYTES} bytes")
    return name


def _ancestors(path: str) -> Iterable[str]:
    parts = path.split("/")
    for end in range(1, len(parts)):
        yield "/".join(parts[:end])


def _under_any(path: str, prefixes: set[str]) -> bool:
    return path in prefixes or any(a in prefixes for a in _ancestors(path))


def check_files(files: Tree) -> None:
    """The patch's files make a tree of their own: no path is both a file and a folder."""
    for path in files:
        for ancestor in _ancestors(path):
            if ancestor in files:
                raise BadPath(f"{ancestor!r} is both a file and a folder in the patch's files")


def build(base: Tree, deleted: Iterable[str], files: Tree, *, whole: bool) -> dict[str, FileEntry]:
    """The new tree: the base (or nothing, when `files` is the whole tree), less each deleted
    path (a file, or a folder and all it holds; a path the base lacks deletes nothing), then the
    files. A file replaces a folder of the same path, and a file in a folder replaces a file
    named as that folder: what a file system holds after the same edits."""
    check_files(files)
    removed = {check_path(p) for p in deleted}
    tree = {} if whole else {p: e for p, e in base.items() if not _under_any(p, removed)}
    if files:
        replaced = set(files)
        tree = {p: e for p, e in tree.items() if not any(a in replaced for a in _ancestors(p))}
        for path in files:
            for ancestor in _ancestors(path):
                tree.pop(ancestor, None)
        tree.update(files)
    return dict(sorted(tree.items()))


def same(a: Tree, b: Tree) -> bool:
    """Whether two trees hold the same files with the same bytes, wherever the bytes are."""
    return a.keys() == b.keys() and all(a[p].same_bytes(b[p]) for p in a)


def differences(old: Tree, new: Tree) -> tuple[list[str], list[str]]:
    """(paths added or changed, paths removed), sorted."""
    changed = sorted(p for p, e in new.items() if p not in old or not old[p].same_bytes(e))
    removed = sorted(p for p in old if p not in new)
    return changed, removed
