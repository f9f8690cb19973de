"""API keys of the caller's workspace."""

from __future__ import annotations

from fastapi import APIRouter

from chainyard.api.deps import CoreDep, KeyManager
from chainyard.schemas import (
    APIKeyInfoV1,
    APIKeysV1,
    APIKeyTombstoneV1,
    APIKeyV1,
    CreateAPIKeyRequestV1,
)
from chainyard.services import api_keys

router = APIRouter(prefix="/v1/api_keys", tags=["api keys"])


@router.get("", response_model=APIKeysV1, summary="Lists API keys (metadata only)")
def list_keys(core: CoreDep, actor: KeyManager) -> APIKeysV1:
    return APIKeysV1(
        keys=[
            APIKeyInfoV1(prefix=k.prefix, name=k.name, type=k.type)
            for k in api_keys.list_keys(core, actor)
        ]
    )


@router.post("", response_model=APIKeyV1, summary="Creates an API key")
def create_key(body: CreateAPIKeyRequestV1, core: CoreDep, actor: KeyManager) -> APIKeyV1:
    raw = api_keys.create_key(core, actor, body.type.value, body.name, body.model_ids)
    return APIKeyV1(api_key=raw)


@router.delete(
    "/{api_key_prefix}", response_model=APIKeyTombstoneV1, summary="Deletes an API key by prefix"
)
def delete_key(api_key_prefix: str, core: CoreDep, actor: KeyManager) -> APIKeyTombstoneV1:
    api_keys.delete_key(core, actor, api_key_prefix)
    return APIKeyTombstoneV1(prefix=api_key_prefix)
