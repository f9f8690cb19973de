"""The initial API key of a server on this machine, so that `chainyard push` works right after
`make serve` with no flags (issue 3's promise).

A server writes its first admin key to `<data dir>/initial-api-key` (mode 0600). The CLI looks
for it only when it talks to a loopback URL and was given no key, in this order:
`$CHAINYARD_DATA_DIR`, the record that `chainyard serve` leaves for its port in the user's cache
directory, and `.chainyard/` in the working directory or one of its parents (where `make serve`
keeps its data). The record holds the key file's path, never the key.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from urllib.parse import urlsplit

KEY_FILE = "initial-api-key"
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def records_dir(environ: Mapping[str, str]) -> pathlib.Path:
    cache = environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(cache) / "chainyard" / "local-servers"


def remember(port: int, data_dir: pathlib.Path, environ: Mapping[str, str] = os.environ) -> None:
    """Called by `chainyard serve`: where the key of the server on `port` lives."""
    key_file = data_dir.resolve() / KEY_FILE
    if not key_file.is_file():
        return
    try:
        folder = records_dir(environ)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / str(port)).write_text(str(key_file) + "\n")
    except OSError:
        pass  # a convenience only: without it the CLI still finds ./.chainyard


def _candidates(port: int, environ: Mapping[str, str]) -> list[pathlib.Path]:
    found: list[pathlib.Path] = []
    if environ.get("CHAINYARD_DATA_DIR"):
        found.append(pathlib.Path(environ["CHAINYARD_DATA_DIR"]) / KEY_FILE)
    try:
        recorded = (records_dir(environ) / str(port)).read_text().strip()
        if recorded:
            found.append(pathlib.Path(recorded))
    except OSError:
        pass
    here = pathlib.Path.cwd()
    found.extend(folder / ".chainyard" / KEY_FILE for folder in (here, *here.parents))
    return found


def find_key(url: str, environ: Mapping[str, str]) -> tuple[str, pathlib.Path] | None:
    """(key, file) of the local server at `url`, or None when `url` is not on this machine or
    no readable key file is found."""
    parts = urlsplit(url)
    if (parts.hostname or "") not in _LOOPBACK:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for path in _candidates(port, environ):
        try:
            key = path.read_text().strip()
        except OSError:
            continue
        if key:
            return key, path
    return None
