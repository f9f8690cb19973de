"""The runner's settings, as the server's configuration gives them (server.py builds them)."""

from __future__ import annotations

import dataclasses

from chainyard.gateway.async_internal import RUN_LIMIT_SECONDS


@dataclasses.dataclass(frozen=True)
class RunnerSettings:
    # This server's name (the cluster's server id); the runner's holder name adds a random part,
    # so that a restarted server never passes for the one that held the requests before.
    server_id: str
    # Where this server's gateway listens (http://host:port) and the secret that opens its
    # internal async route (gateway/async_internal.py).
    gateway_url: str
    secret: str
    # Requests this server runs at once, and one deployment's over all servers.
    concurrency: int = 256
    per_deployment: int = 16
    lease_seconds: float = 30.0
    webhook_attempts: int = 4
    webhook_retry_seconds: float = 2.0
    allow_private_webhooks: bool = False
    # The address the server listens on, whose machine's addresses webhooks may not reach.
    listen_host: str | None = None
    run_seconds: float = RUN_LIMIT_SECONDS

    def __post_init__(self) -> None:
        # Refused at start, not found out by the first request.
        if self.concurrency < 1:
            raise ValueError("the async runner's concurrency must be at least 1")
        if self.per_deployment < 1:
            raise ValueError("--async-concurrency-per-deployment must be at least 1")
        if self.lease_seconds < 1:
            raise ValueError("the async lease must be at least 1 second")
        if self.webhook_attempts < 1:
            raise ValueError("webhooks need at least 1 attempt")
        if self.webhook_retry_seconds < 0:
            raise ValueError("the webhook retry delay cannot be negative")
