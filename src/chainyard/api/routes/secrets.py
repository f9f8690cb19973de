"""Workspace secrets (values never returned)."""

from __future__ import annotations

from fastapi import APIRouter

from chainyard.api.deps import CoreDep, Manager
from chainyard.schemas import SecretsV1, SecretTombstoneV1, SecretV1, UpsertSecretRequestV1
from chainyard.services import secrets

router = APIRouter(prefix="/v1/secrets", tags=["secrets"])


@router.get("", response_model=SecretsV1, summary="Gets all secrets (metadata only)")
def list_secrets(core: CoreDep, actor: Manager) -> SecretsV1:
    return SecretsV1(secrets=secrets.list_(core, actor))


@router.post("", response_model=SecretV1, summary="Upserts a secret")
def upsert_secret(body: UpsertSecretRequestV1, core: CoreDep, actor: Manager) -> SecretV1:
    return secrets.upsert(core, actor, body.name, body.value)


@router.delete("/{secret_name}", response_model=SecretTombstoneV1, summary="Deletes a secret")
def delete_secret(secret_name: str, core: CoreDep, actor: Manager) -> SecretTombstoneV1:
    secrets.delete(core, actor, secret_name)
    return SecretTombstoneV1(name=secret_name)
