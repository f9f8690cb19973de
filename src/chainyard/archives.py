"""Safe handling of chain source archives (.tar.gz): checked before they are accepted, and
extracted so that nothing can leave its folder."""

from __future__ import annotations

import os
import pathlib
import shutil
import tarfile
import tempfile

# Every entry counts: files, folders, and the folders a member's path implies (each costs an inode
# and a disk block when extracted; 20,000 folders unpacked to 79 MB when only files counted).
MAX_ENTRIES = 10_000
MAX_UNPACKED_BYTES = 512 * 1024 * 1024


class ArchiveError(ValueError):
    """The archive is unsafe or not an archive; the message says which member and why."""


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    path = pathlib.PurePosixPath(name)
    if path.is_absolute() or name.startswith(("/", "\\")):
        raise ArchiveError(f"archive member {name!r} has an absolute path")
    if ".." in path.parts:
        raise ArchiveError(f"archive member {name!r} leaves the archive's folder")
    if not (member.isfile() or member.isdir()):
        kind = "link" if (member.issym() or member.islnk()) else "special file"
        raise ArchiveError(
            f"archive member {name!r} is a {kind}; only files and folders are allowed"
        )


def check(path: pathlib.Path, must_contain: str | None = None) -> int:
    """Validates every member without extracting; returns the number of entries (files and
    folders, named or implied by a member's path)."""
    total = 0
    members = 0
    entries: set[pathlib.PurePosixPath] = set()
    found = must_contain is None
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                _check_member(member)
                members += 1
                entry = pathlib.PurePosixPath(member.name)
                # The entry and its folders; stops at the first one already counted.
                for folder in (entry, *entry.parents):
                    if folder in entries or folder == pathlib.PurePosixPath("."):
                        break
                    entries.add(folder)
                if member.isfile():
                    total += member.size
                    found = found or entry.as_posix() == must_contain
                if max(members, len(entries)) > MAX_ENTRIES:
                    raise ArchiveError(
                        f"the archive has more than {MAX_ENTRIES} entries (files and folders)"
                    )
                if total > MAX_UNPACKED_BYTES:
                    raise ArchiveError(
                        f"the archive unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MiB"
                    )
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"not a readable .tar.gz archive: {exc}") from exc
    if not found:
        raise ArchiveError(f"the archive has no file {must_contain!r} (the manifest's source_file)")
    return len(entries)


def extract(archive: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """Extracts into `target` (once: an existing target is reused). Atomic: a crash mid-way
    leaves no half-extracted folder."""
    if target.is_dir():
        return target
    check(archive)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
    try:
        with tarfile.open(archive, "r:*") as tar:
            # The "data" filter refuses links out, device files and absolute paths on its own;
            # `check` above already refused them with clearer messages.
            tar.extractall(staging, filter="data")
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
