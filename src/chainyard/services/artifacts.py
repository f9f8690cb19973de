"""Chain source archives, stored on disk by content address (SHA-256)."""

from __future__ import annotations

import hashlib
import os
import pathlib
import tempfile
from collections.abc import Callable
from typing import BinaryIO

from chainyard.domain.errors import PayloadTooLarge

MAX_ARCHIVE_BYTES = 100 * 1024 * 1024
_CHUNK = 1024 * 1024


def artifacts_dir(data_dir: pathlib.Path) -> pathlib.Path:
    return data_dir / "artifacts"


def path_of(data_dir: pathlib.Path, digest: str) -> pathlib.Path:
    return artifacts_dir(data_dir) / digest[:2] / f"{digest}.tar.gz"


def store(
    data_dir: pathlib.Path,
    stream: BinaryIO,
    limit: int = MAX_ARCHIVE_BYTES,
    check: Callable[[pathlib.Path], object] | None = None,
) -> str:
    """Copies the archive into the store and returns its digest; the same bytes are kept once.

    `check` runs on the uploaded file before it takes its place: an archive it refuses (by
    raising) leaves nothing behind, and never replaces or removes the same bytes stored earlier
    for another deployment."""
    target_dir = artifacts_dir(data_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as tmp:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        f"the source archive exceeds {limit // (1024 * 1024)} MiB",
                        code="ARCHIVE_TOO_LARGE",
                    )
                digest.update(chunk)
                tmp.write(chunk)
        if check is not None:
            check(pathlib.Path(tmp_name))
        final = path_of(data_dir, digest.hexdigest())
        final.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: a reader sees the whole archive or none.
        os.replace(tmp_name, final)
    except BaseException:
        pathlib.Path(tmp_name).unlink(missing_ok=True)
        raise
    return digest.hexdigest()
