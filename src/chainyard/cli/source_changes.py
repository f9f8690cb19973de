"""What changed in a chain's folder since the tree the development deployment last received.

The tree is the files `push` would ship (packaging's ignore rules: truss's defaults,
`.truss_ignore`, `.gitignore`), each with the sha256 of its content. A change is told by content,
not by file events: an editor that saves the same bytes, or a file written and put back, sends
nothing; and a change whose event was missed is still found by the next scan.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import time

from chainyard.chains import packaging

# path (posix, relative to the chain's folder) -> sha256 hex of its content
Tree = dict[str, str]

# A file modified this recently is hashed again even if its size and mtime look unchanged: a
# second write within the file system's timestamp resolution would otherwise go unseen.
_RACY_SECONDS = 2.0


@dataclasses.dataclass(frozen=True)
class Changes:
    changed: list[str]  # added or modified
    deleted: list[str]  # gone, or now ignored

    def __bool__(self) -> bool:
        return bool(self.changed or self.deleted)

    @property
    def paths(self) -> list[str]:
        return sorted(self.changed + self.deleted)


def diff(old: Tree | None, new: Tree) -> Changes:
    """What turns `old` into `new`; from nothing (None), every file is a change."""
    if old is None:
        return Changes(changed=sorted(new), deleted=[])
    changed = sorted(path for path, digest in new.items() if old.get(path) != digest)
    deleted = sorted(path for path in old if path not in new)
    return Changes(changed=changed, deleted=deleted)


def digest(data: bytes) -> str:
    """The digest of an archive as the server names it (services/artifacts.py: sha256 hex of
    the uploaded bytes): what a push's `base_digest` is."""
    return hashlib.sha256(data).hexdigest()


def _file_digest(path: pathlib.Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class SourceTree:
    """The chain's folder as the watcher sees it: which paths count, and their content hashes.

    Hashes are cached by (size, mtime, inode), so a scan after a save reads only what was saved.
    """

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root.resolve()
        self._rules = packaging.IgnoreRules(self.root)
        self._cache: dict[str, tuple[tuple[int, int, int], str]] = {}

    def scan(self) -> Tree:
        """The tree now. The ignore rules are read again first: a saved `.gitignore` applies
        from the scan that follows it (the files it now ignores count as deleted)."""
        self._rules = packaging.IgnoreRules(self.root)
        racy_after = time.time_ns() - int(_RACY_SECONDS * 1e9)
        tree: Tree = {}
        cache: dict[str, tuple[tuple[int, int, int], str]] = {}
        for path in packaging.included_files(self.root):
            rel = path.relative_to(self.root).as_posix()
            try:
                stat = path.stat()
                key = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
                cached = self._cache.get(rel)
                if cached is not None and cached[0] == key and stat.st_mtime_ns < racy_after:
                    value = cached[1]
                else:
                    value = _file_digest(path)
            except FileNotFoundError:
                continue  # deleted while scanning: the event that says so comes next
            tree[rel] = value
            cache[rel] = (key, value)
        self._cache = cache
        return tree

    def relative(self, path: str | os.PathLike[str]) -> str | None:
        """`path` relative to the root (posix), or None when it is outside."""
        absolute = pathlib.Path(path)
        if not absolute.is_absolute():
            absolute = self.root / absolute
        try:
            return absolute.relative_to(self.root).as_posix()
        except ValueError:
            return None

    def concerns(self, path: str | os.PathLike[str]) -> bool:
        """Whether a file event on `path` may change the tree: a path under the root that the
        rules do not ignore. Cheap and a little generous (a removed folder counts); the scan
        decides what actually changed."""
        rel = self.relative(path)
        if rel is None or rel in ("", "."):
            return False
        return not self._rules.ignores(rel)

    def archive(self, paths: list[str]) -> bytes:
        """The .tar.gz of these files, as `push` packs (a patch's `files`)."""
        return packaging.archive(self.root, [self.root / p for p in paths])
