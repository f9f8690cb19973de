"""The inference body cap: its default and how a refusal reads (the gateway and the app's
body-size middleware both answer it)."""

from __future__ import annotations

# Audio and images travel inline (base64 JSON or msgpack); see docs/local-runtime.md.
DEFAULT_MAX_BODY_BYTES = 256 * 2**20


def size_text(n: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} bytes"


def too_large_message(limit: int) -> str:
    return (
        f"the request body is larger than {size_text(limit)}, this server's limit for inference "
        "requests (chainyard serve --max-body-size, CHAINYARD_MAX_BODY_BYTES)"
    )
