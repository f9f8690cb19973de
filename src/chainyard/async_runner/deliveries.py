"""One webhook delivery attempt of the runner: the payload (webhooks/payload.py), signed with the
workspace's active secrets, POSTed by the server's `Sender` (webhooks/delivery.py), and what to
record: delivered; failed, to try again after the retry policy's delay; or failed for good (the
last attempt, or a target the checks refuse). The schedule lives in the store (the request's
webhook attempts and next time), so a delivery outlives the server that started it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import Callable

from chainyard.services import webhook_secrets
from chainyard.services.async_queue import Delivery
from chainyard.services.context import Core
from chainyard.webhooks import payload
from chainyard.webhooks.delivery import Sender

# How long a workspace's signing secrets are reused before they are read again: a rotation
# reaches the signatures within this long.
SECRETS_SECONDS = 5.0

# Delivery outcomes, as the metrics count them.
DELIVERED = "delivered"
FAILED_ATTEMPT = "failed_attempt"
FAILED = "failed"
REFUSED = "refused"


@dataclasses.dataclass(frozen=True)
class DeliveryReport:
    """How an attempt went, for `async_deliveries.record_delivery`."""

    request_id: str
    delivered: bool
    error: str | None
    # When to try again; None: delivered, or failed for good.
    retry_at: dt.datetime | None
    outcome: str


class Webhooks:
    def __init__(
        self,
        core: Core,
        sender: Sender,
        *,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.core = core
        self.sender = sender
        self.clock = clock
        self._secrets: dict[str, tuple[float, list[str]]] = {}

    async def secrets(self, workspace_id: str) -> list[str]:
        """The workspace's signing secrets, newest first (its first is made on first use)."""
        hit = self._secrets.get(workspace_id)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        found = await asyncio.to_thread(webhook_secrets.signing_secrets, self.core, workspace_id)
        self._secrets[workspace_id] = (now + SECRETS_SECONDS, found)
        return found

    async def attempt(self, delivery: Delivery) -> DeliveryReport:
        policy = self.sender.retry
        try:
            secrets = await self.secrets(delivery.workspace_id)
        except Exception as exc:  # the store: this attempt fails, a later one may not
            result_error: str | None = f"cannot read the workspace's webhook secrets: {exc}"
            delivered, final = False, False
        else:
            body = payload.encode(
                payload.result(
                    delivery.request_id,
                    chain_id=delivery.chain_id,
                    deployment_id=delivery.deployment_id,
                    data=delivery.output,
                    errors=delivery.errors,
                    time=self.clock(),
                )
            )
            attempt = await self.sender.attempt(
                delivery.webhook_endpoint,
                body,
                secrets=secrets,
                request_id=delivery.request_id,
                number=delivery.attempt,
            )
            result_error, delivered, final = attempt.error, attempt.delivered, attempt.final
        if delivered:
            return DeliveryReport(delivery.request_id, True, None, None, DELIVERED)
        if final:
            return DeliveryReport(delivery.request_id, False, result_error, None, REFUSED)
        if delivery.attempt >= policy.attempts:
            return DeliveryReport(delivery.request_id, False, result_error, None, FAILED)
        retry_at = self.clock() + dt.timedelta(seconds=policy.delay_after(delivery.attempt))
        return DeliveryReport(delivery.request_id, False, result_error, retry_at, FAILED_ATTEMPT)
