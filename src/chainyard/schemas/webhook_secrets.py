"""Webhook signing secrets (an extension: Baseten manages them in its web UI only)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

__all__ = ["CreatedWebhookSecretV1", "WebhookSecretV1", "WebhookSecretsV1"]


class WebhookSecretV1(BaseModel):
    """A webhook secret's metadata; its value is shown only when it is created."""

    id: str = Field(description="Secret id")
    created_at: datetime = Field(description="Creation time (ISO 8601)")
    expires_at: datetime | None = Field(
        description="When a replaced secret stops signing; null for the current one"
    )


class WebhookSecretsV1(BaseModel):
    """The secrets that sign the workspace's webhooks now, newest first."""

    webhook_secrets: list[WebhookSecretV1]


class CreatedWebhookSecretV1(BaseModel):
    """A new webhook secret, shown this once. Webhooks carry one signature per active secret:
    the previous ones keep signing until their `expires_at`."""

    id: str = Field(description="Secret id")
    created_at: datetime = Field(description="Creation time (ISO 8601)")
    secret: str = Field(description="The secret: whsec_ followed by 40 letters and digits")
    previous: list[WebhookSecretV1] = Field(
        description="The workspace's other active secrets, with when each stops signing"
    )
