"""Webhook signing secrets of the caller's workspace (values shown once, at creation)."""

from __future__ import annotations

from fastapi import APIRouter

from chainyard.api.deps import CoreDep, Manager
from chainyard.schemas import CreatedWebhookSecretV1, WebhookSecretsV1
from chainyard.services import webhook_secrets

router = APIRouter(prefix="/v1/webhook_secrets", tags=["webhook secrets"])


@router.get(
    "", response_model=WebhookSecretsV1, summary="Lists the active webhook secrets (metadata only)"
)
def list_webhook_secrets(core: CoreDep, actor: Manager) -> WebhookSecretsV1:
    return WebhookSecretsV1(webhook_secrets=webhook_secrets.list_(core, actor))


@router.post(
    "",
    response_model=CreatedWebhookSecretV1,
    summary="Creates a webhook secret, shown this once; the previous one signs for 24 more hours",
)
def create_webhook_secret(core: CoreDep, actor: Manager) -> CreatedWebhookSecretV1:
    return webhook_secrets.create(core, actor)
