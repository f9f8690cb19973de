"""msgpack bodies, as truss sends them: a stub of a dependency declared with
`chains.depends(..., use_binary=True)`, or a client posting msgpack.

truss marks a msgpack body `Content-Type: application/octet-stream` and answers such a request in
msgpack (same content type); JSON requests get JSON. numpy arrays travel in msgpack-numpy's format
and datetimes, decimals and UUIDs in truss's extensions of msgpack, so both ends read each other.
We also accept the msgpack media types (`application/msgpack`, `application/x-msgpack`,
`application/vnd.msgpack`), answered like octet-stream.

Decoding uses truss's own (de)serializer when msgpack-numpy is importable; without it (a chainlet
environment without numpy) plain msgpack with truss's extensions, and a body that carries numpy
arrays then fails validation with a message that says what is missing.
"""

from __future__ import annotations

from typing import Any

BINARY_TYPES = frozenset(
    {
        "application/octet-stream",
        "application/msgpack",
        "application/x-msgpack",
        "application/vnd.msgpack",
    }
)
# What a binary answer says it is (truss's stub and clients read it as msgpack).
ANSWER_TYPE = "application/octet-stream"


def media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def is_binary(content_type: str | None) -> bool:
    return media_type(content_type) in BINARY_TYPES


class NotMsgpack(ValueError):
    pass


def numpy_support() -> bool:
    import importlib.util

    return importlib.util.find_spec("msgpack_numpy") is not None


def decode(body: bytes) -> Any:
    """The msgpack body as Python values (numpy arrays where it carries them)."""
    from chainyard.chains import truss_compat

    try:
        if numpy_support():
            return truss_compat.msgpack_deserialize(body)
        return truss_compat.msgpack_deserialize_without_numpy(body)
    except (ValueError, TypeError) as exc:  # msgpack's unpack errors are ValueErrors
        reason = str(exc) or type(exc).__name__
        raise NotMsgpack(f"the request body is not valid msgpack: {reason}") from exc


def encode(value: Any) -> bytes:
    from chainyard.chains import truss_compat

    if numpy_support():
        return truss_compat.msgpack_serialize(value)
    return truss_compat.msgpack_serialize_without_numpy(value)


def missing_numpy_hint(error: str) -> str:
    """A validation error of a msgpack body, with the likely cause when numpy arrays could not be
    decoded here."""
    if numpy_support():
        return error
    return (
        f"{error}\n(this chainlet's environment has no msgpack-numpy: numpy arrays in a msgpack "
        "body cannot be decoded; add numpy and msgpack-numpy to its pip_requirements)"
    )
