"""Workspace secrets (values never returned)."""

from __future__ import annotations

from fastapi import APIRouter

from chainyard.api.deps import CoreDep, Manager
from chainyard.schemas import SecretsV1, SecretTombstoneV1, SecretV1, UpsertSecretRequestV1
from chainyard.services import secrets
from chainyard.store.secrets import Secret

router = APIRouter(prefix="/v1/secrets", tags=["secrets"])


def _secret_v1(row: Secret, team_name: str) -> SecretV1:
    return SecretV1(id=row.id, created_at=row.created_at, name=row.name, team_name=team_name)


@router.get("", response_model=SecretsV1, summary="Gets all secrets (metadata only)")
def list_secrets(core: CoreDep, actor: Manager) -> SecretsV1:
    rows = secrets.list_(core, actor)
    return SecretsV1(secrets=[_secret_v1(r, actor.workspace_name) for r in rows])


@router.post("", response_model=SecretV1, summary="Upserts a secret")
def upsert_secret(body: UpsertSecretRequestV1, core: CoreDep, actor: Manager) -> SecretV1:
    return _secret_v1(secrets.upsert(core, actor, body.name, body.value), actor.workspace_name)


@router.delete("/{secret_name}", response_model=SecretTombstoneV1, summary="Deletes a secret")
def delete_secret(secret_name: str, core: CoreDep, actor: Manager) -> SecretTombstoneV1:
    secrets.delete(core, actor, secret_name)
    return SecretTombstoneV1(name=secret_name)
