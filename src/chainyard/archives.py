"""Safe handling of chain source archives (.tar.gz): checked before they are accepted, and
extracted so that nothing can leave its folder."""

from __future__ import annotations

import os
import pathlib
import shutil
import tarfile
import tempfile
from collections.abc import Iterator

# Every entry counts: files, folders, and the folders a member's path implies (each costs an inode
# and a disk block when extracted; 20,000 folders unpacked to 79 MB when only files counted).
MAX_ENTRIES = 10_000
MAX_UNPACKED_BYTES = 512 * 1024 * 1024


class ArchiveError(ValueError):
    """The archive is unsafe or not an archive; the message says which member and why."""


# What a filesystem can create: a name (one path component) of at most 255 bytes (ext4, xfs,
# btrfs, tmpfs), and a whole member path short enough to stay under PATH_MAX (4096) once it sits
# in the server's extraction folder.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024


def _check_name(name: str) -> None:
    """A name every filesystem we extract to can create, refused at deploy rather than at build.
    Control characters and bytes that are not UTF-8 are refused too: harmless to the kernel,
    they break logs, terminals and tools that handle the source later."""
    if not name:
        raise ArchiveError("an archive member has an empty name")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        # tarfile hands bytes that are not UTF-8 over as lone surrogates.
        raise ArchiveError(f"archive member {name!r} has a name that is not valid UTF-8") from None
    odd = next((c for c in name if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if odd is not None:
        what = "a NUL byte" if odd == "\0" else f"the control character {odd!r}"
        raise ArchiveError(f"archive member {name!r} has {what} in its name")
    if len(encoded) > MAX_PATH_BYTES:
        raise ArchiveError(
            f"archive member {_shown(name)} has a path of {len(encoded)} bytes; "
            f"the limit is {MAX_PATH_BYTES}"
        )
    for part in name.split("/"):
        size = len(part.encode("utf-8"))
        if size > MAX_NAME_BYTES:
            raise ArchiveError(
                f"archive member {_shown(name)} has a file or folder name of {size} bytes "
                f"({_shown(part, 40)}); the limit is {MAX_NAME_BYTES}"
            )


def _shown(name: str, keep: int = 80) -> str:
    """The name for a message: quoted, and cut when long (the error must stay readable)."""
    return repr(name) if len(name) <= keep else f"{name[:keep]!r}... ({len(name)} characters)"


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    _check_name(name)
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


def reason_without_paths(exc: BaseException) -> str:
    """Why an extraction failed, in words that name none of the server's paths."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    if isinstance(exc, tarfile.FilterError):
        return "refused by the extraction filter (a link, special file or path out of the folder)"
    if isinstance(exc, tarfile.TarError | EOFError):
        return "the archive is damaged"
    return type(exc).__name__


def extract(archive: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """Extracts into `target` (once: an existing target is reused). Atomic: a crash mid-way
    leaves no half-extracted folder."""
    if target.is_dir():
        return target
    check(archive)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
    current: list[str] = []

    def members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
        for member in tar:
            current[:] = [member.name]
            yield member
        current.clear()

    try:
        with tarfile.open(archive, "r:*") as tar:
            # The "data" filter refuses links out, device files and absolute paths on its own;
            # `check` above already refused them with clearer messages.
            tar.extractall(staging, members=members(tar), filter="data")
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():
                raise
    except ArchiveError:
        raise
    except (OSError, ValueError, tarfile.TarError, EOFError) as exc:
        # The message reaches the tenant (build logs, deployment status): it names the member
        # and the reason, never the server's folders, which str(OSError) and the tarfile
        # filter's messages show.
        where = f"archive member {_shown(current[0])}" if current else "the archive"
        raise ArchiveError(f"cannot extract {where}: {reason_without_paths(exc)}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
