"""/v1/webhook_secrets: a new secret is shown once; the previous one signs for the grace period;
values are encrypted at rest and never listed; a workspace without one gets one on first use."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

from sqlalchemy import select, text, update

from chainyard.services import api_keys, webhook_secrets
from chainyard.store.audit_logs import AuditLog
from chainyard.store.base import utcnow
from chainyard.store.webhook_secrets import WebhookSecret
from chainyard.store.workspaces import Workspace
from chainyard.webhooks import payload, signing
from chainyard.webhooks.delivery import Sender
from chainyard.webhooks.targets import TargetPolicy
from tests.support.server import Api
from tests.support.webhook_receiver import Received, Receiver

SECRET = re.compile(r"^whsec_[A-Za-z0-9]{40}$")


def _workspace_id(api: Api, name: str = "default") -> str:
    with api.core.db.read() as session:
        ws = session.scalar(select(Workspace).where(Workspace.name == name))
        assert ws is not None
        return ws.id


def _parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_create_shows_the_secret_once_and_rotation_keeps_the_old_one(api: Api) -> None:
    assert api.get("/v1/webhook_secrets").json() == {"webhook_secrets": []}

    first = api.post("/v1/webhook_secrets")
    assert first.status_code == 200, first.text
    one = first.json()
    assert set(one) == {"id", "created_at", "secret", "previous"}
    assert SECRET.match(one["secret"]), one["secret"]
    assert one["previous"] == []

    listing = api.get("/v1/webhook_secrets")
    assert listing.status_code == 200
    assert listing.json()["webhook_secrets"] == [
        {"id": one["id"], "created_at": one["created_at"], "expires_at": None}
    ]
    assert one["secret"] not in listing.text
    ws_id = _workspace_id(api)
    assert webhook_secrets.signing_secrets(api.core, ws_id) == [one["secret"]]

    second = api.post("/v1/webhook_secrets")
    assert second.status_code == 200, second.text
    two = second.json()
    assert SECRET.match(two["secret"]) and two["secret"] != one["secret"]
    [previous] = two["previous"]
    assert previous["id"] == one["id"]
    # The old one keeps signing for 24 hours from the rotation.
    grace = _parse(previous["expires_at"]) - _parse(two["created_at"])
    assert grace == webhook_secrets.GRACE == dt.timedelta(hours=24)

    listed = api.get("/v1/webhook_secrets")
    assert [s["id"] for s in listed.json()["webhook_secrets"]] == [two["id"], one["id"]]
    assert [s["expires_at"] is None for s in listed.json()["webhook_secrets"]] == [True, False]
    for body in (listed.text, api.get("/v1/secrets").text):
        assert one["secret"] not in body and two["secret"] not in body
    # Newest first: the order of the signature header.
    assert webhook_secrets.signing_secrets(api.core, ws_id) == [two["secret"], one["secret"]]

    with api.core.db.read() as session:
        events = [
            (row.event_type, row.event_data["webhook_signing_secret_id"])
            for row in session.scalars(select(AuditLog).order_by(AuditLog.seq))
            if row.event_type.startswith("WEBHOOK_SIGNING_SECRET")
        ]
    assert events == [
        ("WEBHOOK_SIGNING_SECRET_CREATED", one["id"]),
        ("WEBHOOK_SIGNING_SECRET_ROTATED", one["id"]),
        ("WEBHOOK_SIGNING_SECRET_CREATED", two["id"]),
    ]


def test_a_secret_past_its_grace_period_signs_no_more(api: Api) -> None:
    old = api.post("/v1/webhook_secrets").json()
    new = api.post("/v1/webhook_secrets").json()
    ws_id = _workspace_id(api)
    with api.core.db.write() as session:
        session.execute(
            update(WebhookSecret)
            .where(WebhookSecret.id == old["id"])
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )
    assert webhook_secrets.signing_secrets(api.core, ws_id) == [new["secret"]]
    assert [s["id"] for s in api.get("/v1/webhook_secrets").json()["webhook_secrets"]] == [
        new["id"]
    ]
    # The next creation drops the expired row.
    newest = api.post("/v1/webhook_secrets").json()
    assert [p["id"] for p in newest["previous"]] == [new["id"]]
    with api.core.db.read() as session:
        ids = set(session.scalars(select(WebhookSecret.id)))
    assert ids == {new["id"], newest["id"]}


def test_secrets_are_encrypted_at_rest(api: Api) -> None:
    value = api.post("/v1/webhook_secrets").json()["secret"]
    with api.core.db.read() as session:
        [row] = session.scalars(select(WebhookSecret))
        raw_rows = session.execute(text("SELECT * FROM webhook_secrets")).all()
    for column in raw_rows[0]:
        raw = bytes(column) if isinstance(column, bytes | memoryview) else str(column).encode()
        assert value.encode() not in raw
    assert api.core.cipher.decrypt(row.ciphertext) == value


def test_first_use_creates_the_workspaces_secret_once(api: Api) -> None:
    ws_id = _workspace_id(api)
    [first] = webhook_secrets.signing_secrets(api.core, ws_id)
    assert SECRET.match(first)
    assert webhook_secrets.signing_secrets(api.core, ws_id) == [first]
    [listed] = api.get("/v1/webhook_secrets").json()["webhook_secrets"]
    assert listed["expires_at"] is None
    with api.core.db.read() as session:
        [event] = session.scalars(
            select(AuditLog).where(AuditLog.event_type == "WEBHOOK_SIGNING_SECRET_CREATED")
        )
    assert event.event_data["webhook_signing_secret_id"] == listed["id"]
    assert event.source == "SYSTEM"
    # A secret created through the API afterwards replaces it, with the grace period.
    created = api.post("/v1/webhook_secrets").json()
    assert [p["id"] for p in created["previous"]] == [listed["id"]]
    assert webhook_secrets.signing_secrets(api.core, ws_id) == [created["secret"], first]


def test_secrets_are_per_workspace_and_need_a_management_key(api: Api) -> None:
    other = api_keys.admin_create_key(api.core, "other", "WORKSPACE_MANAGE_ALL")
    invoke = api_keys.admin_create_key(api.core, "default", "WORKSPACE_INVOKE")
    mine = api.post("/v1/webhook_secrets").json()
    assert api.get("/v1/webhook_secrets", key=other).json()["webhook_secrets"] == []
    theirs = api.post("/v1/webhook_secrets", key=other).json()
    assert theirs["previous"] == []
    assert webhook_secrets.signing_secrets(api.core, _workspace_id(api)) == [mine["secret"]]
    assert webhook_secrets.signing_secrets(api.core, _workspace_id(api, "other")) == [
        theirs["secret"]
    ]
    for method in (api.get, api.post):
        refused = method("/v1/webhook_secrets", key=invoke)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "PERMISSION_DENIED"
    assert api.client.post("/v1/webhook_secrets").status_code == 401


def test_webhooks_verify_with_the_workspace_secret_and_the_old_one_during_its_grace(
    api: Api,
) -> None:
    """Deliveries to a receiver on loopback, signed with the secrets the service hands out."""
    ws_id = _workspace_id(api)
    body = payload.encode(payload.result("req1", chain_id="c", deployment_id="d", data=[1]))

    async def deliver() -> Received:
        secrets = webhook_secrets.signing_secrets(api.core, ws_id)
        sender = Sender(TargetPolicy(allow_private=True))
        async with Receiver() as receiver, sender:
            outcome = await sender.deliver(receiver.url(), body, secrets=secrets, request_id="req1")
        assert outcome.delivered, outcome.summary()
        [got] = receiver.received
        assert got.body == body
        return got

    old = api.post("/v1/webhook_secrets").json()["secret"]
    first = asyncio.run(deliver())
    assert signing.verify(first.body, first.headers["x-baseten-signature"], [old])

    new = api.post("/v1/webhook_secrets").json()["secret"]
    during = asyncio.run(deliver())
    header = during.headers["x-baseten-signature"]
    assert header == f"v1={signing.sign(body, new)},v1={signing.sign(body, old)}"
    assert signing.verify(during.body, header, [new])
    assert signing.verify(during.body, header, [old])

    with api.core.db.write() as session:
        session.execute(
            update(WebhookSecret)
            .where(WebhookSecret.expires_at.is_not(None))
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )
    after = asyncio.run(deliver())
    assert signing.verify(after.body, after.headers["x-baseten-signature"], [new])
    assert not signing.verify(after.body, after.headers["x-baseten-signature"], [old])
