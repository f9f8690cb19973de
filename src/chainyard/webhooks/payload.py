"""The body of a webhook: Baseten's async predict result.

`{"request_id", "chain_id", "deployment_id", "type": "async_request_completed", "time", "data",
"errors"}`. `type` is the same whatever the outcome; `data` is the chain's output, or null when
it failed; `errors` is empty on success, else `[{"code", "message"}]`; `time` is when the
webhook is sent (UTC). Baseten names the model (`model_id`) for a model's requests and the chain
(`chain_id`) for a chain's, as its status answer does.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

RESULT_TYPE = "async_request_completed"


def timestamp(when: dt.datetime) -> str:
    """ISO 8601 in UTC with a `Z`, as Baseten writes `time`."""
    if when.tzinfo is None:
        raise ValueError("a webhook's time must be an aware datetime")
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def result(
    request_id: str,
    *,
    chain_id: str,
    deployment_id: str,
    data: Any,
    errors: Sequence[Mapping[str, str]] = (),
    time: dt.datetime | None = None,
) -> dict[str, Any]:
    """The payload of a finished request (`time` defaults to now)."""
    return {
        "request_id": request_id,
        "chain_id": chain_id,
        "deployment_id": deployment_id,
        "type": RESULT_TYPE,
        "time": timestamp(time or dt.datetime.now(dt.UTC)),
        "data": None if errors else data,
        "errors": [{"code": e["code"], "message": e["message"]} for e in errors],
    }


def encode(payload: Mapping[str, Any]) -> bytes:
    """The bytes that are sent and signed. Compact and UTF-8, the form pydantic's
    `model_dump_json()` gives: Baseten's sample receiver re-serializes the parsed payload that
    way before checking the signature."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
