"""`DockerImage.apt_requirements` on a host that builds no images: the build checks each package
with dpkg and fails naming the missing ones, unless the operator lets chainyard install them
(`chainyard serve --install-apt-packages`), which runs apt-get on this host."""

from __future__ import annotations

import asyncio
import os
import shutil


class AptError(Exception):
    def __init__(self, message: str, log: list[str]) -> None:
        super().__init__(message)
        self.log = log


def _bare(package: str) -> str:
    """dpkg knows a package by name (and arch): 'curl=7.88' is checked as 'curl'."""
    return package.split("=", 1)[0]


async def missing(packages: list[str]) -> list[str]:
    """The packages dpkg does not report as installed."""
    if shutil.which("dpkg-query") is None:
        raise AptError(
            "apt_requirements need a Debian-based host: no dpkg-query here to check "
            f"{', '.join(packages)}",
            [],
        )
    absent = []
    for package in packages:
        process = await asyncio.create_subprocess_exec(
            "dpkg-query",
            "-W",
            "-f=${db:Status-Status}",
            _bare(package),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await process.communicate()
        if process.returncode != 0 or out.decode().strip() != "installed":
            absent.append(package)
    return absent


async def ensure(packages: list[str], *, install: bool) -> list[str]:
    """Build log lines; raises AptError when packages are missing and cannot be installed."""
    if not packages:
        return []
    absent = await missing(packages)
    if not absent:
        return [f"apt packages installed on this host: {', '.join(packages)}"]
    if not install:
        raise AptError(
            f"apt packages not installed on this host: {', '.join(absent)}. Install them "
            f"(apt-get install {' '.join(absent)}) or let chainyard install them: "
            "`chainyard serve --install-apt-packages`",
            [],
        )
    log = [f"installing apt packages: {' '.join(absent)}"]
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        [*prefix, "apt-get", "update", "-q"],
        [*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", *absent],
    ):
        process = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
        )
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            if line:
                log.append(line)
        if await process.wait() != 0:
            tail = next((ln for ln in reversed(log) if ln.startswith("E:")), log[-1])
            raise AptError(f"apt-get could not install {' '.join(absent)}: {tail}", log)
    still = await missing(absent)
    if still:
        raise AptError(f"apt-get ran but these are still not installed: {', '.join(still)}", log)
    return log
