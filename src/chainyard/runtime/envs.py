"""Python environments for chainlets' pip requirements, cached by the requirements' hash.

A chainlet whose requirements the server's own environment already satisfies runs on the server's
interpreter: nothing to build. Otherwise a virtualenv is made whose site-packages sit in front of
the server's (added through a .pth file), and pip installs only what is missing.
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


async def ensure_env(envs_dir: pathlib.Path, requirements: Sequence[str]) -> tuple[str, list[str]]:
    """The Python executable for these requirements and the build log lines."""
    reqs = normalize(requirements)
    if satisfied_here(reqs):
        note = "requirements satisfied by the server's environment; nothing to build"
        return sys.executable, [note] if reqs else []
    env_dir = envs_dir / requirements_hash(reqs)
    lock = _BUILDING.setdefault(env_dir, asyncio.Lock())
    async with lock:
        return await _ensure_env(env_dir, reqs)


async def _ensure_env(env_dir: pathlib.Path, reqs: list[str]) -> tuple[str, list[str]]:
    python = env_dir / "bin" / "python"
    marker = env_dir / ".chainyard-built"
    if marker.exists():
        return str(python), [
            f"reusing the environment built for these requirements ({env_dir.name})"
        ]
    if env_dir.exists():
        shutil.rmtree(env_dir)  # a build that died half-way
    log: list[str] = [f"building an environment for: {' '.join(reqs)}"]
    await _run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], log)
    purelib = pathlib.Path(
        sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)})
    )
    purelib.mkdir(parents=True, exist_ok=True)
    # `site.addsitedir` (not a bare path) so the server's own .pth files (e.g. the editable
    # chainyard install) are honoured too.
    server_sites = [p for p in site.getsitepackages() if pathlib.Path(p).is_dir()]
    (purelib / "_chainyard_server.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in server_sites)
    )
    # The env's own interpreter runs the server's pip (found through the .pth): it sees the
    # server's packages as installed, installs only what is missing into the env, and never
    # touches the server's environment (pip leaves packages outside its prefix alone).
    cmd = [str(python), "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
    cmd += ["--upgrade-strategy", "only-if-needed", *reqs]
    code = await _run(cmd, log)
    if code != 0:
        shutil.rmtree(env_dir, ignore_errors=True)
        tail = next((line for line in reversed(log) if "ERROR" in line), None) or log[-1]
        raise EnvBuildError(f"pip install failed: {tail}", log)
    marker.write_text("\n".join(reqs) + "\n")
    return str(python), log


async def _run(cmd: list[str], log: list[str]) -> int:
    process = await asyncio.create_subprocess_exec(
        *cmd,
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
