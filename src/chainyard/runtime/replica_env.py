"""The environment a replica starts with: built from scratch, never the server's.

The server's environment holds its secrets (`CHAINYARD_BOOTSTRAP_API_KEY`, database URLs with
passwords, cloud credentials of the operator); a chainlet reads its own `os.environ`, so nothing
of that may reach it. A replica gets only what running Python needs, the variables the operator
names (`chainyard serve --pass-env NAME`, `CHAINYARD_PASS_ENV=A,B`), and then the chainlet's
own `env_variables`. See docs/security.md.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable, Mapping

# Locale and search path: needed by Python and by tools a chainlet may run; none holds a secret.
_ALWAYS = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


def replica_env(
    *,
    home: pathlib.Path,
    pass_through: Iterable[str] = (),
    chainlet_env: Mapping[str, str] | None = None,
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The whole environment of a replica host: minimal, plus the operator's named variables
    (values from `source`, the server's environment by default), plus the chainlet's own."""
    taken = os.environ if source is None else source
    env = {name: taken[name] for name in _ALWAYS if name in taken}
    env.setdefault("PATH", _DEFAULT_PATH)
    env.setdefault("LANG", "C.UTF-8")
    for name in pass_through:
        if name in taken:
            env[name] = taken[name]
    env["HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    own = _own_source_root()
    if own is not None:
        env["PYTHONPATH"] = own
    chainlet = dict(chainlet_env or {})
    if own is not None and chainlet.get("PYTHONPATH"):
        chainlet["PYTHONPATH"] = os.pathsep.join([chainlet["PYTHONPATH"], own])
    env.update(chainlet)
    return env


def _own_source_root() -> str | None:
    """Where chainyard itself is imported from, when that is a source tree rather than an
    installed package: the replica host runs `python -m chainyard.chains.host` and must find it
    without the server's PYTHONPATH."""
    import chainyard

    root = pathlib.Path(chainyard.__file__).resolve().parents[1]
    if root.name in ("site-packages", "dist-packages"):
        return None
    return str(root)
