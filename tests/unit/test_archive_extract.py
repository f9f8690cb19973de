"""archives.extract: a failure names the member and the reason, never the server's folders
(the message reaches the tenant in the build log)."""

from __future__ import annotations

import io
import pathlib
import tarfile

import pytest

from chainyard import archives


def test_an_extraction_failure_does_not_show_the_servers_path(tmp_path: pathlib.Path) -> None:
    member = "/".join(["p" * 200] * 4) + "/chain.py"  # within the deploy's limits
    archive = tmp_path / "source.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = 6
        tar.addfile(info, io.BytesIO(b"x = 1\n"))
    archives.check(archive, must_contain=member)
    # A server folder so deep that the member no longer fits in PATH_MAX below it.
    deep = tmp_path.joinpath(*["s" * 250] * 14)
    deep.mkdir(parents=True)
    with pytest.raises(archives.ArchiveError) as failed:
        archives.extract(archive, deep / "target")
    message = str(failed.value)
    assert "File name too long" in message
    assert "archive member 'pppp" in message
    assert str(tmp_path) not in message and "s" * 250 not in message
    assert not (deep / "target").exists()
    assert [p.name for p in deep.iterdir()] == []  # no staging folder left either
