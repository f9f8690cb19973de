"""Python environments for chainlets' pip requirements, cached by the requirements' hash.

A chainlet whose requirements the server's own environment already satisfies runs on the server's
interpreter: nothing to build. Otherwise a virtualenv is made whose site-packages sit in front of
its base interpreter's (added through a .pth file), and pip installs only what is missing. The
base is the server's interpreter, or another Python the chainlet's base image asks for
(interpreters.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import pathlib
import shutil
import site
import sys
import sysconfig
from collections.abc import Sequence

from packaging.requirements import InvalidRequirement, Requirement

from chainyard.interpreters import SERVER_VERSION, PythonChoice
from chainyard.runtime.baseline import BASELINE


def normalize(requirements: Sequence[str]) -> list[str]:
    return sorted({r.strip() for r in requirements if r.strip() and not r.strip().startswith("#")})


def requirements_hash(requirements: Sequence[str]) -> str:
    text = "\n".join(normalize(requirements))
    # The interpreter is part of the key: an env built for one Python is useless to another.
    text += f"\n#python={sys.version_info.major}.{sys.version_info.minor}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def satisfied_here(requirements: Sequence[str]) -> bool:
    """True if this interpreter's installed distributions meet every requirement."""
    for line in normalize(requirements):
        try:
            req = Requirement(line)
        except InvalidRequirement:
            return False
        if req.url:
            return False
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            return False
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            return False
    return True


class EnvBuildError(Exception):
    def __init__(self, message: str, log: list[str]) -> None:
        super().__init__(message)
        self.log = log


# One build per environment at a time: chainlets of one chain often share their requirements,
# and their builds run concurrently; a second build of the same env would delete the first's
# half-made directory under it.
_BUILDING: dict[pathlib.Path, asyncio.Lock] = {}


def _plain(line: str) -> bool:
    """A requirement pip resolves by name (not an option, a path or a URL)."""
    try:
        return Requirement(line).url is None
    except InvalidRequirement:
        return False


async def ensure_env(
    envs_dir: pathlib.Path,
    requirements: Sequence[str],
    *,
    base: PythonChoice | None = None,
    cwd: pathlib.Path | None = None,
    source_key: str = "",
) -> tuple[str, list[str]]:
    """The Python executable for these requirements and the build log lines.

    `base` is the interpreter the chainlet runs on (None: the server's). pip runs from `cwd` (the
    requirements file's directory in the source), so that local paths in it resolve; an
    environment with such lines is keyed by `source_key` (the source archive) too.
    """
    reqs = normalize(requirements)
    log: list[str] = []
    if base is None or base.executable is None:
        python_exe, version, sites = sys.executable, SERVER_VERSION, _server_sites()
        if satisfied_here(reqs):
            note = "requirements satisfied by the server's environment; nothing to build"
            return python_exe, [note] if reqs else []
    else:
        python_exe, version, sites = base.executable, base.version, list(base.sites)
        if not reqs:
            return python_exe, [f"runs on {python_exe} (Python {version})"]
        log.append(f"building on {python_exe} (Python {version})")
    key = "\n".join(reqs) + f"\n#python={version}:{python_exe}"
    if not all(_plain(r) for r in reqs):
        key += f"\n#source={source_key}:{cwd}"
    env_dir = envs_dir / hashlib.sha256(key.encode()).hexdigest()[:16]
    lock = _BUILDING.setdefault(env_dir, asyncio.Lock())
    async with lock:
        return await _build(env_dir, reqs, log, python_exe, version, sites, cwd)


async def _build(
    env_dir: pathlib.Path,
    reqs: list[str],
    log: list[str],
    python_exe: str,
    version: str,
    sites: list[str],
    cwd: pathlib.Path | None,
) -> tuple[str, list[str]]:
    python = env_dir / "bin" / "python"
    marker = env_dir / ".chainyard-built"
    if marker.exists():
        return str(python), [
            *log,
            f"reusing the environment built for these requirements ({env_dir.name})",
        ]
    if env_dir.exists():
        shutil.rmtree(env_dir)  # a build that died half-way
    log.append(f"building an environment for: {' '.join(reqs)}")
    await _run([python_exe, "-m", "venv", "--without-pip", str(env_dir)], log)
    purelib = pathlib.Path(
        sysconfig.get_path(
            "purelib",
            vars={"base": str(env_dir), "platbase": str(env_dir), "py_version_short": version},
        )
    )
    purelib.mkdir(parents=True, exist_ok=True)
    # `site.addsitedir` (not a bare path) so the base interpreter's own .pth files (e.g. the
    # editable chainyard install) are honoured too.
    (purelib / "_chainyard_server.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in sites)
    )
    requirements_txt = env_dir / "chainyard-requirements.txt"
    requirements_txt.write_text("\n".join(reqs) + "\n")
    # The env's own interpreter runs the base's pip (found through the .pth): it sees the
    # base's packages as installed, installs only what is missing into the env, and never
    # touches the base environment (pip leaves packages outside its prefix alone).
    cmd = [str(python), "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
    cmd += ["--upgrade-strategy", "only-if-needed", "-r", str(requirements_txt)]
    code = await _run(cmd, log, cwd=cwd)
    if code != 0:
        shutil.rmtree(env_dir, ignore_errors=True)
        tail = next((line for line in reversed(log) if "ERROR" in line), None) or log[-1]
        raise EnvBuildError(f"pip install failed: {tail}", log)
    marker.write_text("\n".join(reqs) + "\n")
    return str(python), log


def baseline_missing() -> list[str]:
    """The packages truss's serving image provides (runtime/baseline.py) that the server's
    environment lacks: chainyard depends on them, so only a server installed otherwise lacks
    any."""
    return [r for r in BASELINE if not satisfied_here([r])]


def _server_sites() -> list[str]:
    return [p for p in site.getsitepackages() if pathlib.Path(p).is_dir()]


async def _run(cmd: list[str], log: list[str], cwd: pathlib.Path | None = None) -> int:
    process = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=str(cwd) if cwd is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip()
        if line:
            log.append(line)
    code = await process.wait()
    if code != 0:
        log.append(f"command exited with {code}: {' '.join(cmd[:6])} ...")
    return code
