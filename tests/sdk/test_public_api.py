"""The SDK's public surface is pinned: a change here is a change for every user of it."""

from __future__ import annotations

import asyncio
import inspect

import chainyard.sdk
from chainyard.sdk import AsyncClient, Client

PUBLIC = [
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

RESOURCES = {
    "chains": [
        "audit_logs",
        "delete",
        "deploy",
        "get",
        "iter",
        "list",
        "run_remote",
        "stream_remote",
        "wake",
    ],
    "deployments": [
        "activate",
        "deactivate",
        "delete",
        "get",
        "iter",
        "list",
        "logs",
        "wait_until_active",
    ],
    "development": ["get_patch", "patch", "patches", "push"],
    "environments": [
        "create",
        "get",
        "list",
        "promote",
        "update",
        "update_autoscaling",
        "update_instance_types",
        "wait_until_promoted",
    ],
    "instance_types": ["list", "prices"],
    "secrets": ["delete", "list", "upsert"],
    "api_keys": ["create", "delete", "list"],
    "webhook_secrets": ["create", "list"],
    "async_requests": ["cancel", "queue_status", "status", "submit"],
}

CLIENT_METHODS = ["close", "health", "wait_until_promoted"]


def _public_methods(obj: object) -> list[str]:
    return sorted(
        name
        for name, value in inspect.getmembers(type(obj))
        if not name.startswith("_") and callable(value)
    )


def test_all_is_pinned_and_importable() -> None:
    assert chainyard.sdk.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(chainyard.sdk, name) is not None


def test_resources_are_pinned_and_the_same_for_both_clients() -> None:
    sync, aio = Client("http://h", "k"), AsyncClient("http://h", "k")
    try:
        assert _public_methods(sync) == CLIENT_METHODS
        assert _public_methods(aio) == CLIENT_METHODS
        for resource, methods in RESOURCES.items():
            assert _public_methods(getattr(sync, resource)) == methods, resource
            assert _public_methods(getattr(aio, resource)) == methods, resource
            for method in methods:
                s = inspect.signature(getattr(getattr(sync, resource), method))
                a = inspect.signature(getattr(getattr(aio, resource), method))
                assert list(s.parameters) == list(a.parameters), f"{resource}.{method}"
    finally:
        sync.close()
        asyncio.run(aio.close())


def test_options_are_keyword_only() -> None:
    """Positional parameters are the identifiers a call is about; every option is named."""
    with Client("http://h", "k") as client:
        for resource in RESOURCES:
            for method in RESOURCES[resource]:
                signature = inspect.signature(getattr(getattr(client, resource), method))
                for param in signature.parameters.values():
                    if param.default is not inspect.Parameter.empty:
                        assert param.kind is inspect.Parameter.KEYWORD_ONLY, (
                            f"{resource}.{method}({param.name})"
                        )
