"""Reading a chainlet's logs with the spec's filters."""

from __future__ import annotations

import re
import time

from sqlalchemy import select

from chainyard.domain.errors import Invalid, NotFound
from chainyard.schemas import LogV1
from chainyard.services import lookups
from chainyard.services.context import Actor, Core
from chainyard.store.chains import Chainlet
from chainyard.store.logs import ChainletLog

_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
DEFAULT_WINDOW_MS = 30 * 60 * 1000
# Bounds from the spec: at most 7 days per query, 1000 lines (500 by default), a pattern of 256
# characters, 8 includes and 8 excludes.
MAX_WINDOW_MS = 7 * 24 * 60 * 60 * 1000
MAX_LIMIT = 1000
DEFAULT_LIMIT = 500
MAX_PATTERN_CHARS = 256
MAX_SUBSTRINGS = 8
_MAX_EPOCH_MS = (2**63 - 1) // 1_000_000


def get(
    core: Core,
    actor: Actor,
    chain_id: str,
    deployment_id: str,
    chainlet_id: str,
    *,
    start_epoch_millis: int | None = None,
    end_epoch_millis: int | None = None,
    direction: str | None = None,
    limit: int | None = None,
    min_level: str | None = None,
    replica: str | None = None,
    request_id: str | None = None,
    component: str | None = None,
    search_pattern: str | None = None,
    includes: list[str] | None = None,
    excludes: list[str] | None = None,
) -> list[LogV1]:
    end_ms = end_epoch_millis if end_epoch_millis is not None else int(time.time() * 1000) + 1
    start_ms = start_epoch_millis if start_epoch_millis is not None else end_ms - DEFAULT_WINDOW_MS
    # Lines are kept in signed 64-bit nanoseconds: a bound outside them could not be queried.
    if not (0 <= start_ms <= _MAX_EPOCH_MS and 0 <= end_ms <= _MAX_EPOCH_MS):
        raise Invalid("epoch millis must be between 0 and year 2262", code="INVALID_WINDOW")
    if start_ms > end_ms:
        raise Invalid("start_epoch_millis is after end_epoch_millis", code="INVALID_WINDOW")
    if end_ms - start_ms > MAX_WINDOW_MS:
        raise Invalid("the window from start to end must not exceed 7 days", code="INVALID_WINDOW")
    limit = DEFAULT_LIMIT if limit is None else limit
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be between 1 and {MAX_LIMIT}", code="INVALID_LIMIT")
    if len(includes or ()) > MAX_SUBSTRINGS or len(excludes or ()) > MAX_SUBSTRINGS:
        raise Invalid(
            f"at most {MAX_SUBSTRINGS} includes and {MAX_SUBSTRINGS} excludes",
            code="INVALID_FILTER",
        )
    pattern = None
    if search_pattern and len(search_pattern) > MAX_PATTERN_CHARS:
        raise Invalid(
            f"search_pattern is longer than {MAX_PATTERN_CHARS} characters", code="INVALID_PATTERN"
        )
    if search_pattern:
        try:
            pattern = re.compile(search_pattern)
        except re.error as exc:
            raise Invalid(
                f"search_pattern is not a valid regex: {exc}", code="INVALID_PATTERN"
            ) from exc
    with core.db.read() as session:
        chain = lookups.chain(session, actor, chain_id)
        deployment = lookups.deployment(session, chain, deployment_id)
        chainlet = session.get(Chainlet, chainlet_id)
        if chainlet is None or chainlet.chain_deployment_id != deployment.id:
            raise NotFound(f"chainlet '{chainlet_id}' not found in deployment '{deployment.id}'")
        query = select(ChainletLog).where(
            ChainletLog.chainlet_id == chainlet.id,
            ChainletLog.timestamp_ns >= start_ms * 1_000_000,
            ChainletLog.timestamp_ns < end_ms * 1_000_000,
        )
        if replica:
            query = query.where(ChainletLog.replica == replica)
        if request_id:
            query = query.where(ChainletLog.request_id == request_id)
        if component:
            query = query.where(ChainletLog.component == component)
        descending = (direction or "asc").lower() == "desc"
        order = ChainletLog.seq.desc() if descending else ChainletLog.seq.asc()
        rows = session.scalars(query.order_by(order))
        out: list[LogV1] = []
        floor = _LEVELS.get(min_level or "", 0)
        for row in rows:
            if floor and _LEVELS.get(row.level or "", -1) < floor:
                continue
            if pattern and not pattern.search(row.message):
                continue
            if includes and not all(s in row.message for s in includes):
                continue
            if excludes and any(s in row.message for s in excludes):
                continue
            out.append(
                LogV1(
                    timestamp=str(row.timestamp_ns),
                    message=row.message,
                    replica=row.replica,
                    request_id=row.request_id,
                    level=row.level,
                )
            )
            if len(out) >= limit:
                break
        return out
