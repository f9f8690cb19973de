"""The reconciler's builds: a chainlet's environment built by the runtime in the background (a
new deployment's, or a patch's rebuild), with what the build log must also say. A part of
`Reconciler` (reconciler/loop.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib

from chainyard.domain.statuses import Event
from chainyard.runtime.base import BuildRequest, BuildResult, RuntimeBackend
from chainyard.services import artifacts, secrets
from chainyard.services.context import Core
from chainyard.services.reconciler_store import ChainletUpdate, ChainletWork


class Builds:
    core: Core
    runtime: RuntimeBackend
    _wake: asyncio.Event
    _builds: dict[str, asyncio.Task[BuildResult]]
    # Set on a server whose chainlet code runs unsandboxed (protections.py): it builds the
    # code of this one workspace only (the first to build, when None).
    one_workspace_only: bool
    sole_workspace: str | None

    def _artifact(self, w: ChainletWork) -> pathlib.Path | None:
        if w.artifact_digest is None:
            return None
        return artifacts.path_of(self.core.data_dir, w.artifact_digest)

    def _reconcile_build(self, w: ChainletWork, update: ChainletUpdate) -> ChainletUpdate | None:
        task = self._builds.get(w.chainlet_id)
        if task is None:
            self._start_build(w)
            update.log_lines.append((f"build of {w.name} started", "INFO", "build"))
            return update
        if not task.done():
            return None
        result = self._build_outcome(w, update)
        if result.ok:
            update.events.append((Event.BUILD_SUCCEEDED, None))
        else:
            update.log_lines.append((f"build failed: {result.message}", "ERROR", "build"))
            update.events.append((Event.BUILD_FAILED, result.message or "build failed"))
        return update

    def _start_build(self, w: ChainletWork) -> None:
        """The chainlet's build at its code revision, in the background: a finished build wakes
        the loop."""
        request = BuildRequest(
            chainlet_id=w.chainlet_id,
            chainlet_name=w.name,
            deployment_id=w.deployment_id,
            artifact_path=self._artifact(w),
            pip_requirements=w.pip_requirements,
            image=w.image,
            revision=w.code_revision,
            development=w.development,
        )
        task = asyncio.create_task(self._build(w, request))
        task.add_done_callback(lambda _t: self._wake.set())
        self._builds[w.chainlet_id] = task

    def _build_outcome(self, w: ChainletWork, update: ChainletUpdate) -> BuildResult:
        """A finished build's result, its log lines added to `update`."""
        task = self._builds.pop(w.chainlet_id)
        try:
            result = task.result()
        except Exception as exc:
            result = BuildResult(ok=False, message=f"build crashed: {exc!r}")
        update.log_lines.extend((line, "WARNING", "build") for line in result.warnings)
        update.log_lines.extend((line, None, "build") for line in result.log_lines)
        return result

    async def _build(self, w: ChainletWork, request: BuildRequest) -> BuildResult:
        """The runtime's build, with what the build log must also say, as `chainyard push` did:
        the deploy's warnings about the chainlet's settings, and the secrets the workspace
        lacks."""
        if self.one_workspace_only:
            self.sole_workspace = self.sole_workspace or w.workspace_id
            if w.workspace_id != self.sole_workspace:
                return BuildResult(
                    ok=False,
                    message="this server runs chainlet code without a sandbox and serves one "
                    "workspace only; ask its operator (docs/security.md)",
                )
        result = await self.runtime.build(request)
        if w.image.get("metadata") is not None:
            described = f"metadata (ChainletOptions.metadata): {json.dumps(w.image['metadata'])}"
            result = dataclasses.replace(result, log_lines=(described, *result.log_lines))
        notes = [str(n) for n in w.image.get("warnings") or []]
        if w.secret_keys:
            missing = await asyncio.to_thread(self._missing_secrets, w)
            if missing:
                notes.append(secrets.missing_note(w.name, missing))
        if not notes:
            return result
        return dataclasses.replace(result, warnings=(*notes, *result.warnings))

    def _missing_secrets(self, w: ChainletWork) -> list[str]:
        with self.core.db.read() as session:
            return secrets.missing_in(session, w.workspace_id, w.secret_keys)

    def _cancel_build(self, chainlet_id: str) -> None:
        task = self._builds.pop(chainlet_id, None)
        if task is not None:
            task.cancel()
