"""Settings and request plumbing shared by `Client` and `AsyncClient`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx

from chainyard import __version__
from chainyard.sdk._ops import Op
from chainyard.sdk.errors import ChainyardError, ConnectionFailed, error_from_response

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 60.0
USER_AGENT = f"chainyard-sdk/{__version__}"


def resolve_url(url: str | None) -> str:
    value = (url or os.environ.get("CHAINYARD_URL") or DEFAULT_URL).strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"the server URL must start with http:// or https://, not {value!r}")
    return value


def resolve_key(api_key: str | None) -> str | None:
    value = api_key if api_key is not None else os.environ.get("CHAINYARD_API_KEY")
    return value.strip() if value else None


def default_headers(api_key: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    headers.update(extra or {})
    return headers


def request_kwargs(op: Op[Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"params": op.query()}
    if op.files is not None:
        kwargs["data"] = dict(op.data or {})
        kwargs["files"] = dict(op.files)
    elif op.content is not None:
        kwargs["content"] = op.content
        kwargs["headers"] = {"Content-Type": "application/json"}
    elif op.json is not None:
        kwargs["json"] = op.json
    if op.timeout is not None:
        kwargs["timeout"] = op.timeout
    return kwargs


def finish(op: Op[T], response: httpx.Response) -> T:
    if not response.is_success:
        raise error_from_response(response)
    try:
        return op.decode(response)
    except ValueError as exc:
        # Not the caller's mistake (which ValueError means elsewhere): a server of another
        # version, or something else answering at that address.
        raise ChainyardError(
            f"unexpected answer to {op.method} {op.path} ({response.status_code}): {exc}"
        ) from exc


def connection_failed(exc: httpx.HTTPError, base_url: str) -> ConnectionFailed:
    if isinstance(exc, httpx.TimeoutException):
        return ConnectionFailed(f"{base_url} did not answer in time ({type(exc).__name__})")
    return ConnectionFailed(f"cannot reach {base_url}: {exc or type(exc).__name__}")
