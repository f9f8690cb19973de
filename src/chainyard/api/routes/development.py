"""Live patches of a chain's development deployment (docs/development.md, a chainyard
extension): POST .../development/patch, and the patch history."""

from __future__ import annotations

from typing import Annotated, BinaryIO

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from chainyard.api.deps import CoreDep, Manager
from chainyard.domain.errors import Invalid
from chainyard.schemas import Patch, Patches, PatchRequest
from chainyard.services import patches

router = APIRouter(prefix="/v1/chains/{chain_id}/development", tags=["development"])

# The patch's JSON: a manifest (at most 1 MiB, as a deploy's) and the deleted paths.
MAX_PATCH_BYTES = 2 * 1024 * 1024

_OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            # Inline: no route names the model, so it is not among the document's components.
            "application/json": {"schema": PatchRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["patch"],
                    "properties": {
                        "patch": {"type": "string", "description": "PatchRequest as JSON"},
                        "files": {
                            "type": "string",
                            "format": "binary",
                            "description": "The files added or changed since base_digest (all "
                            "of them when it is null), as a .tar.gz",
                        },
                    },
                }
            },
        },
    }
}


def _parse(raw: str | bytes) -> PatchRequest:
    if len(raw) > MAX_PATCH_BYTES:
        raise Invalid("the patch is larger than 2 MiB", code="PATCH_TOO_LARGE")
    try:
        return PatchRequest.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'patch'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise Invalid(f"invalid patch: {problems}", code="INVALID_PATCH") from exc


@router.post(
    "/patch",
    response_model=Patch,
    status_code=202,
    summary="Patches the chain's development deployment live (chainyard extension)",
    openapi_extra=_OPENAPI_BODY,
)
async def patch_development(
    chain_id: str, request: Request, core: CoreDep, actor: Manager
) -> Patch:
    content_type = request.headers.get("content-type", "")
    files: BinaryIO | None = None
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=4, max_part_size=MAX_PATCH_BYTES)
        field = form.get("patch")
        if field is None:
            raise Invalid("a multipart patch needs a 'patch' field", code="INVALID_PATCH")
        parsed = _parse(await field.read() if isinstance(field, UploadFile) else field)
        upload = form.get("files")
        if isinstance(upload, UploadFile):
            files = upload.file
        elif upload is not None:
            raise Invalid(
                "'files' must be a file: the .tar.gz of the patch's files", code="INVALID_PATCH"
            )
    elif content_type.startswith("application/json") or not content_type:
        parsed = _parse(await request.body())
    else:
        raise Invalid(
            "send the patch as application/json, or multipart/form-data with its files",
            code="UNSUPPORTED_MEDIA_TYPE",
        )
    return await run_in_threadpool(patches.apply, core, actor, chain_id, parsed, files)


@router.get(
    "/patches",
    response_model=Patches,
    summary="The development deployment's patches, newest first (chainyard extension)",
)
def list_patches(
    chain_id: str,
    core: CoreDep,
    actor: Manager,
    limit: Annotated[int | None, Query(ge=1, le=1000, description="At most this many")] = None,
) -> Patches:
    return Patches(patches=patches.list_(core, actor, chain_id, limit=limit))


@router.get(
    "/patches/{patch_id}",
    response_model=Patch,
    summary="One patch of the development deployment (chainyard extension)",
)
def get_patch(chain_id: str, patch_id: str, core: CoreDep, actor: Manager) -> Patch:
    return patches.get(core, actor, chain_id, patch_id)
