"""POST /v1/chains/deploy: our addition, since Baseten creates deployments outside REST."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from chainyard import archives
from chainyard.api.deps import CoreDep, Manager
from chainyard.domain.errors import Invalid
from chainyard.schemas import DeployManifest, DeployResponse
from chainyard.services import artifacts, deploy

router = APIRouter(prefix="/v1/chains", tags=["deploy"])

MAX_MANIFEST_BYTES = 1024 * 1024

_OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/DeployManifest"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["manifest"],
                    "properties": {
                        "manifest": {"type": "string", "description": "DeployManifest as JSON"},
                        "source": {
                            "type": "string",
                            "format": "binary",
                            "description": "The chain's source directory as a .tar.gz",
                        },
                    },
                }
            },
        },
    }
}


def _parse_manifest(raw: str | bytes) -> DeployManifest:
    if len(raw) > MAX_MANIFEST_BYTES:
        raise Invalid("the manifest is larger than 1 MiB", code="MANIFEST_TOO_LARGE")
    try:
        return DeployManifest.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'manifest'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        raise Invalid(f"invalid manifest: {problems}", code="INVALID_MANIFEST") from exc


@router.post(
    "/deploy",
    response_model=DeployResponse,
    summary="Deploys a chain from a manifest, and its source archive (chainyard extension)",
    openapi_extra=_OPENAPI_BODY,
)
async def deploy_chain(request: Request, core: CoreDep, actor: Manager) -> DeployResponse:
    content_type = request.headers.get("content-type", "")
    digest: str | None = None
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=4)
        manifest_field = form.get("manifest")
        if manifest_field is None:
            raise Invalid("multipart deploy needs a 'manifest' field", code="INVALID_MANIFEST")
        raw = (
            await manifest_field.read()
            if isinstance(manifest_field, UploadFile)
            else manifest_field
        )
        manifest = _parse_manifest(raw)
        source = form.get("source")
        if isinstance(source, UploadFile):
            source_file = manifest.source_file
            try:
                digest = await run_in_threadpool(
                    artifacts.store,
                    core.data_dir,
                    source.file,
                    check=lambda path: archives.check(path, source_file),
                )
            except archives.ArchiveError as exc:
                raise Invalid(f"bad source archive: {exc}", code="INVALID_ARCHIVE") from exc
    elif content_type.startswith("application/json") or not content_type:
        body = await request.body()
        manifest = _parse_manifest(body)
    else:
        raise Invalid(
            "send the manifest as application/json, or multipart/form-data with the source archive",
            code="UNSUPPORTED_MEDIA_TYPE",
        )
    return await run_in_threadpool(deploy.deploy, core, actor, manifest, digest)
