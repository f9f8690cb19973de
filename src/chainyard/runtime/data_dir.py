"""Filling a chainlet's data dir (`DeploymentContext.data_dir`) as truss fills `/app/data`: the
chain's `DockerImage.data_dir` copied in, and each `Assets.external_data` item downloaded to its
`local_data_path`.

Done once per data dir (a marker records what was put there); run by the local runtime's build,
and on Ray by the replica's supervisor on its node (a node has no data dir until then). Imports
nothing of the server.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import tempfile
import urllib.request
from typing import Any

_MARKER = ".chainyard-data"
_TIMEOUT = 60.0


class DataDirError(Exception):
    pass


def wanted(image: dict[str, Any]) -> bool:
    return bool(image.get("data_dir") or image.get("external_data"))


def prepare(data_dir: pathlib.Path, source_dir: pathlib.Path, image: dict[str, Any]) -> list[str]:
    """Log lines; raises DataDirError with what went wrong."""
    if not wanted(image):
        return []
    spec = {"data_dir": image.get("data_dir"), "external_data": image.get("external_data", [])}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    marker = data_dir / _MARKER
    if marker.is_file() and marker.read_text().strip() == digest:
        return [f"data dir already prepared ({data_dir})"]
    data_dir.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    if spec["data_dir"]:
        origin = (source_dir / spec["data_dir"]).resolve()
        if not origin.is_relative_to(source_dir.resolve()) or not origin.is_dir():
            raise DataDirError(f"DockerImage.data_dir {spec['data_dir']!r} is not in the source")
        shutil.copytree(origin, data_dir, dirs_exist_ok=True, symlinks=False)
        log.append(f"copied data_dir {spec['data_dir']} into the chainlet's data dir")
    for item in spec["external_data"]:
        target = (data_dir / item["path"]).resolve()
        if not target.is_relative_to(data_dir.resolve()):
            raise DataDirError(f"external_data path {item['path']!r} leaves the data dir")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            _download(item["url"], target)
        except OSError as exc:
            raise DataDirError(f"external_data: cannot download {item['url']}: {exc}") from exc
        log.append(f"downloaded {item['url']} to data dir path {item['path']}")
    marker.write_text(digest + "\n")
    return log


def _download(url: str, target: pathlib.Path) -> None:
    # Into a temporary file beside the target, then renamed: a replica never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        # Only http(s) URLs get here: the deploy refuses other schemes.
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=_TIMEOUT) as answer:
            shutil.copyfileobj(answer, out, 1 << 20)
        os.replace(tmp, target)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
