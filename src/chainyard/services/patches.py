"""Live patches of a chain's development deployment (docs/development.md, "A patch").

`apply` checks a patch against the deployment, builds the new source tree and stores it as an
artifact, then records the patch and each patched chainlet's new code, settings and revision in
one transaction. The reconciler ends a patch with `succeed` or `fail`.

The source the deployment runs (what `base_digest` must name) is the tree of its newest patch
that is APPLYING or SUCCEEDED, else the archive it was pushed with. Patches limited to some
chainlets (`chainlets`) leave the others on older trees; the deployment's tree is still the
newest one, and the next patch starts from it.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Sequence
from typing import Any, BinaryIO

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chainyard import archives
from chainyard.domain import patch_tree
from chainyard.domain.errors import Conflict, Invalid, NotFound
from chainyard.domain.ids import new_id
from chainyard.domain.statuses import TERMINAL_FAILURES, DeploymentStatus
from chainyard.schemas import ComputeSpec, DeployManifest, Patch, PatchRequest
from chainyard.services import artifacts, lookups, source_trees
from chainyard.services.builder import ChainletSpec
from chainyard.services.context import Actor, Core
from chainyard.services.deploy import plan
from chainyard.store.base import utcnow
from chainyard.store.chains import Chain, ChainDeployment, Chainlet
from chainyard.store.db import after_commit
from chainyard.store.logs import ChainletLog
from chainyard.store.patches import DeploymentPatch

APPLYING = "APPLYING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
SKIPPED = "SKIPPED"
# Patches whose tree the deployment runs, or is moving to.
_LIVE = (APPLYING, SUCCEEDED)

REFUSED = "PATCH_REFUSED"
BASE_MISMATCH = "PATCH_BASE_MISMATCH"
_PUSH_AGAIN = "push again (`chainyard push --watch`) to replace the development deployment"
# A failure's message comes from a replica's output: kept, but not without bound.
_MAX_MESSAGE = 8000


def development_deployment(
    session: Session, chain: Chain, *, for_update: bool = False
) -> ChainDeployment:
    """The chain's development deployment: the newest one, while a push replaces the old."""
    query = (
        select(ChainDeployment)
        .where(ChainDeployment.chain_id == chain.id, ChainDeployment.is_development.is_(True))
        .order_by(ChainDeployment.created_at.desc(), ChainDeployment.id.desc())
        .limit(1)
    )
    if for_update:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise NotFound(
            f"chain '{chain.id}' has no development deployment; push one with "
            "`chainyard push --watch`",
            code="DEPLOYMENT_NOT_FOUND",
        )
    return row


def running_digest(session: Session, deployment: ChainDeployment) -> str | None:
    """The source tree the deployment runs or is moving to (see the module's docstring)."""
    latest = session.execute(
        select(DeploymentPatch.artifact_digest)
        .where(
            DeploymentPatch.chain_deployment_id == deployment.id,
            DeploymentPatch.status.in_(_LIVE),
        )
        .order_by(DeploymentPatch.revision.desc())
        .limit(1)
    ).first()
    return deployment.artifact_digest if latest is None else latest[0]


# -- checks that need no source tree ----------------------------------------------------------


def _refuse_failed(deployment: ChainDeployment) -> None:
    status = DeploymentStatus(deployment.status)
    if status in TERMINAL_FAILURES:
        raise Conflict(
            f"the development deployment is {status.value}: nothing runs to patch; {_PUSH_AGAIN}",
            code="DEPLOYMENT_FAILED",
        )


def _mismatch(base: str, current: str | None, why: str = "") -> Conflict:
    runs = current or "no source archive"
    return Conflict(
        f"base_digest {base} is not the source the development deployment runs ({runs}){why}; "
        "send every file (base_digest null)",
        code=BASE_MISMATCH,
    )


def parse_manifest(raw: dict[str, Any] | None, chain: Chain) -> DeployManifest | None:
    """The patch's manifest as a deploy manifest of this chain. Its chain reference may be left
    out, and its `development` flag (a development push's manifest) is not used here."""
    if raw is None:
        return None
    data = dict(raw)
    data.pop("development", None)
    if data.get("environment") is not None:
        raise Invalid(
            "a development deployment is in no environment: leave `environment` out of the "
            "patch's manifest",
            code="INVALID_MANIFEST",
        )
    if data.get("chain_id") not in (None, chain.id) or data.get("chain_name") not in (
        None,
        chain.name,
    ):
        raise Invalid(
            f"the patch's manifest names another chain than '{chain.name}' ({chain.id})",
            code="INVALID_MANIFEST",
        )
    data.pop("chain_name", None)
    data["chain_id"] = chain.id
    try:
        return DeployManifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'manifest'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise Invalid(f"invalid manifest: {problems}", code="INVALID_MANIFEST") from exc


def _compute(value: dict[str, Any]) -> dict[str, Any]:
    # Through the schema: a row written before a field existed compares with its default.
    return ComputeSpec.model_validate(value).model_dump(mode="json")


def _changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    keys = sorted(before.keys() | after.keys())
    return ", ".join(
        f"{k} {before.get(k)!r} -> {after.get(k)!r}" for k in keys if before.get(k) != after.get(k)
    )


def check_manifest(
    deployment: ChainDeployment, entry: str, specs: Sequence[ChainletSpec]
) -> dict[str, ChainletSpec]:
    """Refuses (400 PATCH_REFUSED) what a live patch cannot change: the set of chainlets, the
    entrypoint, a chainlet's compute, instance type or dependencies. The specs by name."""
    rows = {c.name: c for c in deployment.chainlets}
    wanted = {s.name: s for s in specs}
    added, removed = sorted(wanted.keys() - rows.keys()), sorted(rows.keys() - wanted.keys())
    if added or removed:
        what = [f"added: {', '.join(added)}"] if added else []
        what += [f"removed: {', '.join(removed)}"] if removed else []
        raise Invalid(
            "Live patching is not possible if the set of Chainlet names differ "
            f"({'; '.join(what)}); {_PUSH_AGAIN}",
            code=REFUSED,
        )
    if entry != deployment.entrypoint:
        raise Invalid(
            f"Live patching is not possible if the entrypoint changes ('{deployment.entrypoint}' "
            f"-> '{entry}'); {_PUSH_AGAIN}",
            code=REFUSED,
        )
    for name, row in rows.items():
        spec = wanted[name]
        before, after = _compute(row.compute), _compute(spec.compute)
        if before != after:
            raise Invalid(
                f"chainlet '{name}': its compute changed ({_changes(before, after)}); a live "
                f"patch cannot change resources: {_PUSH_AGAIN}",
                code=REFUSED,
            )
        if spec.instance_type_id != row.instance_type_id:
            raise Invalid(
                f"chainlet '{name}': its instance type changed ('{row.instance_type_id}' -> "
                f"'{spec.instance_type_id}'); a live patch cannot change resources: {_PUSH_AGAIN}",
                code=REFUSED,
            )
        if sorted(spec.dependencies) != sorted(row.dependencies):
            raise Invalid(
                f"chainlet '{name}': its dependencies changed ({sorted(row.dependencies)} -> "
                f"{sorted(spec.dependencies)}); {_PUSH_AGAIN}",
                code=REFUSED,
            )
    return wanted


def select_chainlets(deployment: ChainDeployment, names: Sequence[str] | None) -> list[str]:
    """The names of the chainlets to patch, in the deployment's order."""
    known = [c.name for c in deployment.chainlets]
    if names is None:
        return known
    if not names:
        raise Invalid(
            "`chainlets` names no chainlet; leave it out to patch all of them",
            code="UNKNOWN_CHAINLET",
        )
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise Invalid(
            f"the development deployment has no chainlet {', '.join(map(repr, unknown))} "
            f"(it has {', '.join(known)})",
            code="UNKNOWN_CHAINLET",
        )
    return [n for n in known if n in set(names)]


# -- the new tree -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Built:
    digest: str
    changed: list[str]
    deleted: list[str]


def _unpack(
    archive: pathlib.Path, target: pathlib.Path, origin: str, what: str
) -> dict[str, patch_tree.FileEntry]:
    try:
        return source_trees.unpack(archive, target, origin)
    except archives.ArchiveError as exc:
        raise Invalid(f"bad {what}: {exc}", code="INVALID_ARCHIVE") from exc


def _build(
    core: Core,
    work: pathlib.Path,
    deployment: ChainDeployment,
    current: str | None,
    request: PatchRequest,
    files: dict[str, patch_tree.FileEntry],
) -> _Built:
    base: dict[str, patch_tree.FileEntry] | None = None
    if current is not None:
        archive = artifacts.path_of(core.data_dir, current)
        if archive.is_file():
            base = _unpack(archive, work / "base", patch_tree.BASE, "stored source archive")
    if request.base_digest is not None and base is None:
        raise _mismatch(request.base_digest, current, ", or the server no longer has it")
    whole = request.base_digest is None
    try:
        tree = patch_tree.build(base or {}, request.deleted, files, whole=whole)
    except patch_tree.BadPath as exc:
        raise Invalid(f"bad patch: {exc}", code="INVALID_PATH") from exc
    source_file = deployment.source_file
    if source_file is not None and source_file not in tree:
        raise Invalid(
            f"the patch leaves no file '{source_file}', the chain's source file; if the chain "
            f"moved, {_PUSH_AGAIN}",
            code=REFUSED,
        )
    if base is not None and current is not None and patch_tree.same(base, tree):
        return _Built(current, [], [])
    changed, deleted = patch_tree.differences(base or {}, tree)
    packed = work / "tree.tar.gz"
    source_trees.pack(
        tree, {patch_tree.BASE: work / "base", patch_tree.FILES: work / "files"}, packed
    )
    try:
        with open(packed, "rb") as f:
            digest = artifacts.store(
                core.data_dir, f, check=lambda path: archives.check(path, source_file)
            )
    except archives.ArchiveError as exc:
        raise Invalid(f"the patched source tree: {exc}", code="INVALID_ARCHIVE") from exc
    return _Built(digest, changed, deleted)


# -- recording it -----------------------------------------------------------------------------


def _settings_change(row: Chainlet, spec: ChainletSpec) -> bool:
    return row.pip_requirements != spec.pip_requirements or (row.image or {}) != spec.image


def _needs_patch(
    row: Chainlet, deployment: ChainDeployment, digest: str, spec: ChainletSpec | None
) -> bool:
    if (row.artifact_digest or deployment.artifact_digest) != digest:
        return True
    return spec is not None and (
        _settings_change(row, spec) or sorted(row.secret_keys) != sorted(spec.secret_keys)
    )


def _state(row: Chainlet) -> dict[str, Any]:
    """What a chainlet goes back to when the patch fails."""
    return {
        "artifact_digest": row.artifact_digest,
        "pip_requirements": list(row.pip_requirements),
        "image": None if row.image is None else dict(row.image),
        "secret_keys": list(row.secret_keys),
        "code_revision": row.code_revision,
    }


def _restore(row: Chainlet, state: dict[str, Any]) -> None:
    row.artifact_digest = state.get("artifact_digest")
    row.pip_requirements = list(state.get("pip_requirements", []))
    row.image = state.get("image")
    row.secret_keys = list(state.get("secret_keys", row.secret_keys))
    row.code_revision = int(state.get("code_revision", 0))


def _last_revision(session: Session, deployment_id: str) -> int:
    last = session.scalar(
        select(func.max(DeploymentPatch.revision)).where(
            DeploymentPatch.chain_deployment_id == deployment_id
        )
    )
    return int(last or 0)


def _record(
    core: Core,
    chain: Chain,
    deployment_id: str,
    current: str | None,
    built: _Built,
    specs: dict[str, ChainletSpec] | None,
    selected: list[str],
) -> Patch:
    with core.db.write() as session:
        # Locked: the patches of a deployment, and their ends, are written one at a time.
        deployment = development_deployment(session, chain, for_update=True)
        if deployment.id != deployment_id:
            raise Conflict(
                "the development deployment was replaced while the patch was prepared; "
                "send every file (base_digest null)",
                code=BASE_MISMATCH,
            )
        if running_digest(session, deployment) != current:
            raise Conflict(
                "another patch of the development deployment arrived meanwhile; "
                "send every file (base_digest null)",
                code=BASE_MISMATCH,
            )
        revision = _last_revision(session, deployment.id) + 1
        now = utcnow()
        patch = DeploymentPatch(
            id=new_id(),
            chain_deployment_id=deployment.id,
            revision=revision,
            created_at=now,
            changed_paths=built.changed,
            deleted_paths=built.deleted,
            artifact_digest=built.digest,
            previous={},
        )
        rows = [c for c in deployment.chainlets if c.name in set(selected)]
        changes = [
            c
            for c in rows
            if _needs_patch(c, deployment, built.digest, None if specs is None else specs[c.name])
        ]
        if not changes:
            patch.status, patch.kind, patch.chainlets = SKIPPED, "code", []
            patch.finished_at = now
            patch.message = "nothing changed: the development deployment runs this already"
            session.add(patch)
            return view(patch)
        rebuild = specs is not None and any(_settings_change(c, specs[c.name]) for c in changes)
        patch.status, patch.kind = APPLYING, "requirements" if rebuild else "code"
        patch.chainlets = [c.name for c in changes]
        applying = {
            p.revision: p
            for p in session.scalars(
                select(DeploymentPatch).where(
                    DeploymentPatch.chain_deployment_id == deployment.id,
                    DeploymentPatch.status == APPLYING,
                )
            )
        }
        previous: dict[str, Any] = {}
        for c in changes:
            # A chainlet still moving to an earlier patch goes back, should this one fail, to
            # what it ran before that one: the code it moved to was never seen working.
            owner = applying.get(c.code_revision)
            if owner is not None and c.id in owner.previous:
                previous[c.id] = owner.previous[c.id]
            else:
                previous[c.id] = _state(c)
            c.artifact_digest = built.digest
            if specs is not None:
                spec = specs[c.name]
                c.pip_requirements = list(spec.pip_requirements)
                c.image = dict(spec.image)
                c.secret_keys = list(spec.secret_keys)
            c.code_revision = revision
        patch.previous = previous
        for earlier in applying.values():
            # Superseded: none of its chainlets is moving to it any more.
            if not any(c.code_revision == earlier.revision for c in deployment.chainlets):
                earlier.status, earlier.finished_at = FAILED, now
                earlier.message = f"superseded by revision {revision}"
        session.add(patch)
        after_commit(session, core.wake_reconciler)
        return view(patch)


def apply(
    core: Core, actor: Actor, chain_id: str, request: PatchRequest, files: BinaryIO | None
) -> Patch:
    """Checks, builds and records a patch; bad input (a 4xx) leaves no row behind."""
    with core.db.read() as session:
        chain = lookups.chain(session, actor, chain_id)
        deployment = development_deployment(session, chain)
        current = running_digest(session, deployment)
    _refuse_failed(deployment)
    if request.base_digest is not None and request.base_digest != current:
        raise _mismatch(request.base_digest, current)
    try:
        for path in request.deleted:
            patch_tree.check_path(path)
    except patch_tree.BadPath as exc:
        raise Invalid(f"bad patch: {exc}", code="INVALID_PATH") from exc
    manifest = parse_manifest(request.manifest, chain)
    specs: dict[str, ChainletSpec] | None = None
    if manifest is not None:
        if manifest.source_file not in (None, deployment.source_file):
            raise Invalid(
                f"the chain's source file moved ('{deployment.source_file}' -> "
                f"'{manifest.source_file}'); {_PUSH_AGAIN}",
                code=REFUSED,
            )
        entry, planned, _warnings = plan(core, manifest)
        specs = check_manifest(deployment, entry, planned)
    selected = select_chainlets(deployment, request.chainlets)
    with source_trees.scratch(core.data_dir) as work:
        tree: dict[str, patch_tree.FileEntry] = {}
        if files is not None:
            upload = work / "files.tar.gz"
            source_trees.save_upload(files, upload)
            tree = _unpack(upload, work / "files", patch_tree.FILES, "files archive")
        built = _build(core, work, deployment, current, request, tree)
    return _record(core, chain, deployment.id, current, built, specs, selected)


# -- the reconciler's end of a patch ----------------------------------------------------------


def _applying(
    session: Session, deployment_id: str, revision: int
) -> tuple[ChainDeployment, DeploymentPatch] | None:
    deployment = session.scalar(
        select(ChainDeployment).where(ChainDeployment.id == deployment_id).with_for_update()
    )
    if deployment is None:
        return None
    patch = session.scalar(
        select(DeploymentPatch).where(
            DeploymentPatch.chain_deployment_id == deployment_id,
            DeploymentPatch.revision == revision,
        )
    )
    if patch is None or patch.status != APPLYING:
        return None
    return deployment, patch


def succeed(core: Core, deployment_id: str, revision: int) -> bool:
    """The patch's chainlets run its revision. Idempotent: False when it was not APPLYING."""
    with core.db.write() as session:
        found = _applying(session, deployment_id, revision)
        if found is None:
            return False
        _deployment, patch = found
        patch.status, patch.finished_at = SUCCEEDED, utcnow()
    return True


def fail(core: Core, deployment_id: str, revision: int, message: str) -> bool:
    """The patch failed: each chainlet still on its revision goes back to what it ran before
    (digest, requirements, image, secrets, revision), and says so in its logs, in the same
    transaction. Idempotent: False when it was not APPLYING."""
    with core.db.write() as session:
        found = _applying(session, deployment_id, revision)
        if found is None:
            return False
        deployment, patch = found
        patch.status, patch.finished_at = FAILED, utcnow()
        patch.message = message[:_MAX_MESSAGE]
        line = f"patch {revision} failed: {patch.message}; the previous code keeps serving"
        for c in deployment.chainlets:
            if c.code_revision == revision and c.id in patch.previous:
                _restore(c, patch.previous[c.id])
                # Here rather than where the reconciler sees a replica fail: the replicas of
                # the other chainlets may still be starting when the revision is given up (on
                # Ray each imports the chain on its own), and they say nothing when stopped.
                session.add(
                    ChainletLog(
                        chainlet_id=c.id, timestamp_ns=time.time_ns(), message=line, level="ERROR"
                    )
                )
        after_commit(session, core.wake_reconciler)
    return True


# -- reading ----------------------------------------------------------------------------------


def view(row: DeploymentPatch) -> Patch:
    duration = None
    if row.finished_at is not None:
        duration = max(0, round((row.finished_at - row.created_at).total_seconds() * 1000))
    return Patch(
        id=row.id,
        chain_deployment_id=row.chain_deployment_id,
        revision=row.revision,
        status=row.status,
        kind=row.kind,
        chainlets=list(row.chainlets),
        changed_paths=list(row.changed_paths),
        deleted_paths=list(row.deleted_paths),
        artifact_digest=row.artifact_digest,
        message=row.message,
        created_at=row.created_at,
        finished_at=row.finished_at,
        duration_ms=duration,
    )


def list_(core: Core, actor: Actor, chain_id: str, *, limit: int | None = None) -> list[Patch]:
    """The development deployment's patches, newest first."""
    with core.db.read() as session:
        chain = lookups.chain(session, actor, chain_id)
        deployment = development_deployment(session, chain)
        query = (
            select(DeploymentPatch)
            .where(DeploymentPatch.chain_deployment_id == deployment.id)
            .order_by(DeploymentPatch.revision.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        return [view(p) for p in session.scalars(query)]


def get(core: Core, actor: Actor, chain_id: str, patch_id: str) -> Patch:
    with core.db.read() as session:
        chain = lookups.chain(session, actor, chain_id)
        row = session.scalar(
            select(DeploymentPatch)
            .join(ChainDeployment, ChainDeployment.id == DeploymentPatch.chain_deployment_id)
            .where(DeploymentPatch.id == patch_id, ChainDeployment.chain_id == chain.id)
        )
        if row is None:
            raise NotFound(
                f"patch '{patch_id}' not found in chain '{chain.id}'", code="PATCH_NOT_FOUND"
            )
        return view(row)
