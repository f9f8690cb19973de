"""The local runtime's builds: the source unpacked, apt packages checked (or installed), the
chainlet's Python environment made, its data dir filled. A part of `LocalRuntime`
(runtime/local.py), kept apart because a build shares nothing with running replicas but the
interpreter it leaves behind."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from typing import Any

from chainyard import archives
from chainyard.interpreters import Interpreters
from chainyard.runtime import apt, python_envs
from chainyard.runtime import data_dir as chainlet_data
from chainyard.runtime.base import BuildRequest, BuildResult

log = logging.getLogger("chainyard.runtime.local")


class LocalBuilds:
    data_dir: pathlib.Path
    interpreters: Interpreters
    install_apt: bool
    _sources: pathlib.Path
    _envs: pathlib.Path
    # The interpreter each built chainlet runs on, by chainlet id and patch revision.
    _pythons: dict[tuple[str, int], str]

    def source_dir(self, digest: str) -> pathlib.Path:
        return self._sources / digest

    def _dev_sources(self, deployment_id: str) -> pathlib.Path:
        """Every source a development deployment ran, in one folder of its own: its sandbox
        sees this folder, so that its spare host can load the next patch's source."""
        return self.data_dir / "dev-sources" / deployment_id

    def source_of(self, deployment_id: str, digest: str, *, development: bool) -> pathlib.Path:
        if development:
            return self._dev_sources(deployment_id) / digest
        return self.source_dir(digest)

    async def build(self, request: BuildRequest) -> BuildResult:
        lines: list[str] = []
        if request.artifact_path is None:
            return BuildResult(ok=False, message="the deployment has no source archive to run")
        digest = request.artifact_path.name.split(".")[0]
        source = self.source_of(request.deployment_id, digest, development=request.development)
        try:
            await asyncio.to_thread(archives.extract, request.artifact_path, source)
        except archives.ArchiveError as exc:
            return BuildResult(ok=False, message=f"cannot unpack the source: {exc}")
        except OSError as exc:
            # Not str(exc): it names the server's folders, and the tenant reads this message.
            log.warning("unpacking %s failed: %s", request.artifact_path, exc)
            reason = archives.reason_without_paths(exc)
            return BuildResult(ok=False, message=f"cannot unpack the source: {reason}")
        lines.append(f"source unpacked ({digest[:12]})")
        image = request.image
        warnings: list[str] = []
        try:
            lines += await apt.ensure(list(image.get("apt", [])), install=self.install_apt)
        except apt.AptError as exc:
            return BuildResult(ok=False, message=str(exc), log_lines=tuple(lines + exc.log))
        missing_base = python_envs.baseline_missing()
        if missing_base:
            warnings.append(
                "the server's environment lacks packages that truss's serving image always "
                f"provides: {', '.join(missing_base)}; install chainyard with its dependencies "
                "(make install)"
            )
        try:
            python, env_log, python_note = await self._environment(
                request.deployment_id,
                request.chainlet_name,
                request.pip_requirements,
                image,
                source,
            )
        except python_envs.EnvBuildError as exc:
            return BuildResult(ok=False, message=str(exc), log_lines=tuple(lines + exc.log))
        except ValueError as exc:
            return BuildResult(ok=False, message=str(exc), log_lines=tuple(lines))
        if python_note:
            warnings.append(python_note)
        lines += env_log
        if chainlet_data.wanted(image):
            target = self._data_dir(request.deployment_id, request.chainlet_name)
            try:
                lines += await asyncio.to_thread(chainlet_data.prepare, target, source, image)
            except (chainlet_data.DataDirError, OSError) as exc:
                return BuildResult(ok=False, message=str(exc), log_lines=tuple(lines))
        self._pythons[(request.chainlet_id, request.revision)] = python
        return BuildResult(ok=True, log_lines=tuple(lines), warnings=tuple(warnings))

    async def _environment(
        self,
        deployment_id: str,
        chainlet: str,
        pip_requirements: tuple[str, ...],
        image: dict[str, Any],
        source: pathlib.Path,
    ) -> tuple[str, list[str], str | None]:
        """The chainlet's interpreter, the build log lines, and the note when its base image's
        Python is not the one that runs it. ValueError when it cannot run here at all."""
        choice = self.interpreters.choose(
            image.get("python_version"),
            f"chainlet '{chainlet}': DockerImage.base_image {image.get('base_image')}",
        )
        if choice.refusal:
            raise ValueError(choice.refusal)
        note = choice.warning if "base_image" in image else None
        requirements = list(pip_requirements)
        cwd = source
        from_file = image.get("requirements_file")
        if from_file:
            requirements += list(from_file.get("requirements", []))
            cwd = cwd / str(from_file.get("dir") or ".")
        python, log = await python_envs.ensure_env(
            self._envs, requirements, base=choice, cwd=cwd, source_key=source.name
        )
        return python, log, note

    def _data_dir(self, deployment_id: str, chainlet: str) -> pathlib.Path:
        return self.data_dir / "chainlet-data" / deployment_id / chainlet
