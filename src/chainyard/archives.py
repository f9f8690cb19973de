"""Safe handling of chain source archives (.tar.gz): checked before they are accepted, and
extracted so that nothing can leave its folder."""

from __future__ import annotations

import os
import pathlib
import shutil
import tarfile
import tempfile

MAX_FILES = 10_000
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
    """Validates every member without extracting; returns the number of files."""
    total = 0
    files = 0
    found = must_contain is None
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                _check_member(member)
                if member.isfile():
                    files += 1
                    total += member.size
                    found = found or pathlib.PurePosixPath(member.name).as_posix() == must_contain
                if files > MAX_FILES:
                    raise ArchiveError(f"the archive has more than {MAX_FILES} files")
                if total > MAX_UNPACKED_BYTES:
                    raise ArchiveError(
                        f"the archive unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MiB"
                    )
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"not a readable .tar.gz archive: {exc}") from exc
    if not found:
        raise ArchiveError(f"the archive has no file {must_contain!r} (the manifest's source_file)")
    return files


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
