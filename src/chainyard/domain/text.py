"""Text that can be stored and sent: valid Unicode, which a Python str need not be.

JSON may spell a lone UTF-16 surrogate (`"\\ud800"`), and Python decodes it into a str that no
UTF-8 encoder accepts: the database driver, the cipher and the JSON response all fail on it. Such
text is refused where it enters, with a 400.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chainyard.domain.errors import Invalid


def is_valid_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable(value: str) -> str:
    """`value`, with any lone surrogate written as its escape (`\\ud800`): for text we keep
    whatever it holds (a chainlet's log lines), where refusing is not an option."""
    if is_valid_text(value):
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def check_text(value: str, what: str) -> None:
    """Refuses `value` with a 400 if it holds a lone surrogate; `what` names the field."""
    if not is_valid_text(value):
        raise Invalid(_message(what), code="INVALID_TEXT")


def check_json_text(document: Any) -> None:
    """Refuses a parsed JSON document any of whose strings (keys too) holds a lone surrogate."""
    for where, value in _strings(document):
        if not is_valid_text(value):
            raise Invalid(_message(where or "the request body"), code="INVALID_TEXT")


def _message(what: str) -> str:
    if len(what) > 200:
        what = what[:200] + "..."
    return (
        f"{what} holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape without its pair), "
        "which is not valid Unicode text"
    )


def _strings(document: Any) -> Iterator[tuple[str, str]]:
    """Every string of a parsed JSON document with its place (`a.b[2]`), without recursion: the
    depth of a document is the client's choice."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            yield where, value
        elif isinstance(value, dict):
            for key, item in value.items():
                # A bad key is named by its parent's place, as it cannot be printed itself.
                yield (where or "the request body") + " (a key)", key
                stack.append((f"{where}.{key}" if where else key, item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
