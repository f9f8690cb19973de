"""Which Python runs a chainlet whose `base_image` asks for a Python version.

chainyard builds no images. A chainlet runs on the server's interpreter unless its base image asks
for another Python version and a matching interpreter is usable here: one the operator configured
(`chainyard serve --python 3.10=/opt/py310/bin/python`), else `python3.X` on the PATH. Usable means
it reports that version and imports chainyard's replica host and truss_chains (the operator
installs chainyard there, as on Ray nodes). Without one:

- an older Python than the server's is asked for: the chainlet runs on the server's Python, and
  the push output and build log say so (Python keeps old code running);
- a newer one: the push is refused, since code written for it may not even parse on ours.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading

SERVER_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"

# Run by a candidate interpreter: its version and site dirs, and proof it can host a replica.
_PROBE = (
    "import json, site, sys; import chainyard.chains.host, truss_chains; "
    "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], "
    "'full': sys.version.split()[0], 'sites': site.getsitepackages()}))"
)


@dataclasses.dataclass(frozen=True)
class PythonChoice:
    """The interpreter for a chainlet: `executable` None means the server's own."""

    executable: str | None
    version: str
    sites: tuple[str, ...] = ()
    warning: str | None = None
    refusal: str | None = None


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


class Interpreters:
    """Finds and caches interpreters by Python version (thread-safe: deploys run in threads)."""

    def __init__(self, configured: dict[str, str] | None = None, *, runtime: str = "local"):
        self.configured = dict(configured or {})
        self.runtime = runtime
        self._probed: dict[str, dict[str, object] | None] = {}
        self._lock = threading.Lock()

    def choose(self, requested: str | None, what: str) -> PythonChoice:
        """The interpreter for a chainlet whose base image (`what`, for messages) asks for
        Python `requested` (None: no version known)."""
        server = f"Python {sys.version.split()[0]} ({sys.executable})"
        if self.runtime == "ray":
            if requested is None or requested == SERVER_VERSION:
                return PythonChoice(None, SERVER_VERSION)
            if _version_key(requested) > _version_key(SERVER_VERSION):
                return PythonChoice(
                    None,
                    SERVER_VERSION,
                    refusal=f"{what} asks for Python {requested}; replicas on Ray run on the "
                    f"cluster's Python {SERVER_VERSION}, older than the chain was written for",
                )
            return PythonChoice(
                None,
                SERVER_VERSION,
                warning=f"{what} asks for Python {requested}; on Ray it runs on the cluster's "
                f"Python {SERVER_VERSION} instead",
            )
        if requested is None:
            return PythonChoice(
                None,
                SERVER_VERSION,
                warning=f"{what}: its Python version is unknown; it runs on {server}",
            )
        if requested == SERVER_VERSION and requested not in self.configured:
            return PythonChoice(None, SERVER_VERSION)
        for path in self._candidates(requested):
            found = self._probe(path)
            if found is not None and found["version"] == requested:
                sites = tuple(str(s) for s in found["sites"])  # type: ignore[attr-defined]
                return PythonChoice(path, requested, sites=sites)
        if requested == SERVER_VERSION:
            return PythonChoice(None, SERVER_VERSION)
        hint = f"configure one with `chainyard serve --python {requested}=PATH`"
        if _version_key(requested) > _version_key(SERVER_VERSION):
            return PythonChoice(
                None,
                SERVER_VERSION,
                refusal=f"{what} asks for Python {requested}; no usable Python {requested} on "
                f"this host ({hint}), and the server's {server} is older than the chain was "
                "written for",
            )
        return PythonChoice(
            None,
            SERVER_VERSION,
            warning=f"{what} asks for Python {requested}; no usable Python {requested} on this "
            f"host ({hint}): it runs on {server} instead",
        )

    def _candidates(self, version: str) -> list[str]:
        import shutil

        found = [self.configured[version]] if version in self.configured else []
        on_path = shutil.which(f"python{version}")
        if on_path:
            found.append(on_path)
        return found

    def _probe(self, path: str) -> dict[str, object] | None:
        with self._lock:
            if path in self._probed:
                return self._probed[path]
        try:
            done = subprocess.run(
                [path, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=False
            )
            answer = (
                json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
            )
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            answer = None
        with self._lock:
            self._probed[path] = answer
        return answer
