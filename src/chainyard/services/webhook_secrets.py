"""Webhook signing secrets: every webhook is signed with each active secret of its workspace.

A workspace has one current secret (no `expires_at`). Creating a new one (the API, `chainyard
webhooks create`) shows its value once and gives the previous current one an `expires_at` a
grace period away, during which it keeps signing, so that receivers can switch without losing a
webhook. A workspace that never created one gets one on its first webhook. Values are encrypted
with the server's cipher, as workspace secrets are.
"""

from __future__ import annotations

import datetime as dt
import secrets
import string

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from chainyard.domain.errors import NotFound
from chainyard.domain.ids import new_id
from chainyard.schemas import CreatedWebhookSecretV1, WebhookSecretV1
from chainyard.services import audit
from chainyard.services.context import Actor, Core, system_actor
from chainyard.store.base import utcnow
from chainyard.store.webhook_secrets import WebhookSecret
from chainyard.store.workspaces import Workspace

PREFIX = "whsec_"
SECRET_LENGTH = 40
# Baseten's: a rotated secret signs for another 24 hours.
GRACE = dt.timedelta(hours=24)
_ALPHABET = string.ascii_letters + string.digits


def new_secret() -> str:
    """`whsec_` and 40 letters and digits (Baseten's form): about 238 random bits."""
    return PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(SECRET_LENGTH))


def secret_v1(row: WebhookSecret) -> WebhookSecretV1:
    return WebhookSecretV1(id=row.id, created_at=row.created_at, expires_at=row.expires_at)


def _active(session: Session, workspace_id: str, now: dt.datetime) -> list[WebhookSecret]:
    """The secrets that sign now, newest first."""
    query = select(WebhookSecret).where(
        WebhookSecret.workspace_id == workspace_id,
        or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > now),
    )
    return list(
        session.scalars(query.order_by(WebhookSecret.created_at.desc(), WebhookSecret.id.desc()))
    )


def _lock_workspace(session: Session, workspace_id: str) -> Workspace:
    """Serialises the changes of one workspace's secrets (SQLite: its single writer), so that two
    creations at once cannot leave two current secrets."""
    ws = session.scalar(select(Workspace).where(Workspace.id == workspace_id).with_for_update())
    if ws is None:
        raise NotFound("workspace not found", code="WORKSPACE_NOT_FOUND")
    return ws


def _add(session: Session, workspace_id: str, ciphertext: bytes, now: dt.datetime) -> WebhookSecret:
    row = WebhookSecret(
        id=new_id(), workspace_id=workspace_id, ciphertext=ciphertext, created_at=now
    )
    session.add(row)
    session.flush()
    return row


def create(core: Core, actor: Actor) -> CreatedWebhookSecretV1:
    """A new current secret, whose value this answer is the only one to show. The previous
    current one signs for `GRACE` more; those whose grace has ended are deleted."""
    value = new_secret()
    ciphertext = core.cipher.encrypt(value)
    with core.db.write() as session:
        _lock_workspace(session, actor.workspace_id)
        now = utcnow()
        session.execute(
            delete(WebhookSecret).where(
                WebhookSecret.workspace_id == actor.workspace_id,
                WebhookSecret.expires_at.is_not(None),
                WebhookSecret.expires_at <= now,
            )
        )
        previous = _active(session, actor.workspace_id, now)
        for old in previous:
            if old.expires_at is None:
                old.expires_at = now + GRACE
                audit.record(
                    session,
                    actor,
                    "WEBHOOK_SIGNING_SECRET_ROTATED",
                    {"webhook_signing_secret_id": old.id},
                )
        row = _add(session, actor.workspace_id, ciphertext, now)
        audit.record(
            session, actor, "WEBHOOK_SIGNING_SECRET_CREATED", {"webhook_signing_secret_id": row.id}
        )
        return CreatedWebhookSecretV1(
            id=row.id,
            created_at=row.created_at,
            secret=value,
            previous=[secret_v1(r) for r in previous],
        )


def list_(core: Core, actor: Actor) -> list[WebhookSecretV1]:
    """The workspace's active secrets, newest first: metadata only, never a value."""
    with core.db.read() as session:
        return [secret_v1(r) for r in _active(session, actor.workspace_id, utcnow())]


def signing_secrets(core: Core, workspace_id: str) -> list[str]:
    """The values that sign a webhook of the workspace now, newest first (the order of the
    signature header). A workspace without one gets its first here: every webhook is signed."""
    with core.db.read() as session:
        ciphertexts = [r.ciphertext for r in _active(session, workspace_id, utcnow())]
    if not ciphertexts:
        value = new_secret()
        ciphertext = core.cipher.encrypt(value)
        with core.db.write() as session:
            ws = _lock_workspace(session, workspace_id)
            # Another server (or request) may have created it while this one waited for the lock.
            ciphertexts = [r.ciphertext for r in _active(session, workspace_id, utcnow())]
            if not ciphertexts:
                row = _add(session, workspace_id, ciphertext, utcnow())
                audit.record(
                    session,
                    system_actor(workspace_id, ws.name),
                    "WEBHOOK_SIGNING_SECRET_CREATED",
                    {"webhook_signing_secret_id": row.id},
                )
                return [value]
    return [core.cipher.decrypt(c) for c in ciphertexts]
