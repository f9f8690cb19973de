"""Text that reaches a workspace (its logs, its API answers) names no address of the platform's:
where replicas listen, and the nodes they run on, are for the gateway alone."""

from __future__ import annotations

import re

# IPv4 with an optional port; a bracketed IPv6 with an optional port; ('10.0.0.5', 41234) as
# Python prints a socket address.
_ADDRESS = re.compile(
    r"\(\s*'[0-9a-fA-F.:]+'\s*,\s*\d+\s*\)"
    r"|\[[0-9a-fA-F:]+\](?::\d+)?"
    r"|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"
)
HIDDEN = "<internal address>"


def without_addresses(text: str) -> str:
    """`text` with every IP address (and its port) replaced by a placeholder."""
    return _ADDRESS.sub(HIDDEN, text)
