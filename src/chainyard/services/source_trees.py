"""Source trees on disk for live patches (services/patches.py): stored archives and a patch's
files unpacked into a scratch folder and indexed, and the new tree packed into an archive.

Packing is deterministic, so that the same tree always has the same digest: entries sorted by
path, owner and group 0, mode 0644 or 0755, no folder entries (as `chainyard push` packs), a gzip
header with neither name nor time, and a fixed compression level. Each file's mtime is a
function of its content: fixed, yet different for a file whose bytes changed, so that Python
never takes a cached .pyc of the old bytes for the new ones (it checks the source's mtime and
size), wherever a runtime extracts revisions.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import pathlib
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from typing import BinaryIO

from chainyard import archives
from chainyard.domain.errors import PayloadTooLarge
from chainyard.domain.patch_tree import FileEntry, Tree
from chainyard.services.artifacts import MAX_ARCHIVE_BYTES

_CHUNK = 1024 * 1024
# 1980-01-01, where zip and some tools' dates begin; a file's own offset comes on top.
_EPOCH = 315_532_800
_MTIME_SPREAD = 2**24
# The fastest: a patch is on the path from a save to the new answer, and source code compresses
# well at any level. Fixed, since the level changes the bytes.
_GZIP_LEVEL = 1


@contextlib.contextmanager
def scratch(data_dir: pathlib.Path) -> Iterator[pathlib.Path]:
    """A folder of its own for one patch, on the data dir's file system, removed afterwards."""
    parent = data_dir / "patch-work"
    parent.mkdir(parents=True, exist_ok=True)
    folder = pathlib.Path(tempfile.mkdtemp(dir=parent, prefix="patch-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def save_upload(stream: BinaryIO, target: pathlib.Path, limit: int = MAX_ARCHIVE_BYTES) -> None:
    """Copies an uploaded archive to `target`, refusing one over `limit` bytes."""
    size = 0
    with open(target, "wb") as out:
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"the patch's files exceed {limit // 2**20} MiB", code="ARCHIVE_TOO_LARGE"
                )
            out.write(chunk)


def unpack(archive: pathlib.Path, target: pathlib.Path, origin: str) -> dict[str, FileEntry]:
    """Extracts a checked archive (archives.extract: raises ArchiveError) and indexes its files."""
    archives.extract(archive, target)
    return index(target, origin)


def index(root: pathlib.Path, origin: str) -> dict[str, FileEntry]:
    tree: dict[str, FileEntry] = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = pathlib.Path(folder) / name
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
            executable = bool(path.stat().st_mode & 0o100)
            rel = path.relative_to(root).as_posix()
            tree[rel] = FileEntry(digest.hexdigest(), executable, origin)
    return tree


def mtime_of(entry: FileEntry) -> int:
    return _EPOCH + int(entry.sha256[:8], 16) % _MTIME_SPREAD


def pack(tree: Tree, roots: Mapping[str, pathlib.Path], target: pathlib.Path) -> None:
    """Writes `tree` as .tar.gz to `target`; each file's bytes are read from the root of its
    origin."""
    with (
        open(target, "wb") as raw,
        gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=_GZIP_LEVEL
        ) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(tree):
            entry = tree[path]
            source = roots[entry.origin] / path
            info = tarfile.TarInfo(path)
            info.size = source.stat().st_size
            info.mode = 0o755 if entry.executable else 0o644
            info.mtime = mtime_of(entry)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(source, "rb") as f:
                tar.addfile(info, f)
