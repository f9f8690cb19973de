"""Python client of a chainyard server: `Client` (blocking) and `AsyncClient` (asyncio).

    from chainyard.sdk import Client

    with Client("http://127.0.0.1:8080", api_key) as client:
        envs = client.environments
        update = envs.update_instance_types(chain_id, "production", {"RandInt": "2x8"})
        if update.chain_deployment is not None:
            envs.wait_until_promoted(
                chain_id, "production", deployment_id=update.chain_deployment.id, timeout=300
            )
        client.chains.run_remote(chain_id, {"max_value": 5}, environment="production")

Answers are the wire models of `chainyard.schemas`; failures are the typed errors of
`chainyard.sdk.errors`, all of them `ChainyardError`s.
"""

from __future__ import annotations

from chainyard.sdk.async_client import AsyncClient
from chainyard.sdk.client import Client
from chainyard.sdk.errors import (
    ChainyardAPIError,
    ChainyardError,
    Conflict,
    ConnectionFailed,
    DeploymentFailed,
    Forbidden,
    Invalid,
    NotFound,
    PayloadTooLarge,
    PromotionFailed,
    PromotionTimeout,
    RateLimited,
    ServerError,
    StreamBrokenOff,
    Unauthorized,
    WaitError,
    WaitTimeout,
)

__all__ = [
    "AsyncClient",
    "ChainyardAPIError",
    "ChainyardError",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "DeploymentFailed",
    "Forbidden",
    "Invalid",
    "NotFound",
    "PayloadTooLarge",
    "PromotionFailed",
    "PromotionTimeout",
    "RateLimited",
    "ServerError",
    "StreamBrokenOff",
    "Unauthorized",
    "WaitError",
    "WaitTimeout",
]
