"""A replica's health: the chainlet's `is_healthy`, checked every second, and the thresholds of
`ChainletOptions.health_checks` (truss's `HealthChecks`) it is judged by.

The replica measures; the runtime decides (runtime/health_verdicts.py): the readiness request
(GET /v1/models/model) answers with a report of how long `is_healthy` has been failing and the
chainlet's thresholds, and the runtime takes the replica out of traffic or restarts it. Baseten
documents the thresholds (https://docs.baseten.co/development/model/health-checks): each of
`startup_threshold_seconds`, `stop_traffic_threshold_seconds` and `restart_threshold_seconds` is
10 to 3000 seconds and defaults to 1800; the deprecated `restart_check_delay_seconds` is 0 to
3000, and with `restart_threshold_seconds` at most 3000.

Like truss's server, a check that fails logs "Health check failed" (a warning, with the reason),
and `is_healthy` returning None counts as healthy (truss's readiness answer for it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("chainyard.health")

HEALTH_PATH = "/v1/models/model"
# How often `is_healthy` runs (Baseten: every 10 s; here every second, so thresholds are met to
# the second), how long one call may take before it counts as failed, and how often a failing
# streak is logged again.
CHECK_INTERVAL = 1.0
CHECK_TIMEOUT = 3.0
LOG_EVERY = 10.0
# Exit status of a replica that did not start serving within startup_threshold_seconds.
STARTUP_EXIT = 75

DEFAULT_THRESHOLD = 1800
_RANGES = {
    "startup_threshold_seconds": (10, 3000),
    "stop_traffic_threshold_seconds": (10, 3000),
    "restart_threshold_seconds": (10, 3000),
    "restart_check_delay_seconds": (0, 3000),
}


class HealthSettingsError(ValueError):
    """`health_checks` holds a value Baseten does not accept."""


@dataclasses.dataclass(frozen=True)
class Thresholds:
    startup: int = DEFAULT_THRESHOLD
    stop_traffic: int = DEFAULT_THRESHOLD
    restart: int = DEFAULT_THRESHOLD
    restart_delay: int = 0

    def report(self) -> dict[str, int]:
        return {
            "startup_threshold_seconds": self.startup,
            "stop_traffic_threshold_seconds": self.stop_traffic,
            "restart_threshold_seconds": self.restart,
            "restart_check_delay_seconds": self.restart_delay,
        }


def thresholds_of(health_checks: Any, chainlet: str = "") -> Thresholds:
    """The thresholds of a truss `HealthChecks` (None fields take Baseten's defaults); raises
    HealthSettingsError for a value Baseten refuses."""
    where = f"{chainlet}: " if chainlet else ""
    values: dict[str, int] = {}
    for field, (low, high) in _RANGES.items():
        value = getattr(health_checks, field, None) if health_checks is not None else None
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise HealthSettingsError(
                f"{where}health_checks.{field} must be a whole number of seconds from {low} "
                f"to {high} (Baseten's range), got {value!r}"
            )
        values[field] = value
    delay = values.get("restart_check_delay_seconds", 0)
    restart = values.get("restart_threshold_seconds", DEFAULT_THRESHOLD)
    if delay + restart > 3000:
        raise HealthSettingsError(
            f"{where}health_checks.restart_check_delay_seconds + restart_threshold_seconds must "
            f"not exceed 3000 seconds (Baseten's limit), got {delay} + {restart}"
        )
    return Thresholds(
        startup=values.get("startup_threshold_seconds", DEFAULT_THRESHOLD),
        stop_traffic=values.get("stop_traffic_threshold_seconds", DEFAULT_THRESHOLD),
        restart=restart,
        restart_delay=delay,
    )


def chainlet_thresholds(desc: Any) -> Thresholds:
    """The thresholds of a chainlet descriptor's `remote_config.options.health_checks`."""
    options = desc.chainlet_cls.remote_config.options
    return thresholds_of(getattr(options, "health_checks", None), desc.name)


class HealthGate:
    """Runs the chainlet's `is_healthy` at most once per interval and keeps the failing streak."""

    def __init__(
        self,
        check: Callable[[], Any] | None,
        thresholds: Thresholds,
        *,
        started: float,
        interval: float = CHECK_INTERVAL,
        timeout: float = CHECK_TIMEOUT,
    ) -> None:
        self.check = check
        self.thresholds = thresholds
        self.started = started
        self.interval = interval
        self.timeout = timeout
        self.passed_once = check is None
        self.failing_since: float | None = None
        self.error: str | None = None
        self._last = -math.inf
        self._logged = -math.inf
        self._pending: asyncio.Future[Any] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()

    async def report(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of the readiness request: 200 while healthy, else 503."""
        async with self._lock:
            now = time.monotonic()
            if self.check is not None and now - self._last >= self.interval:
                self._last = now
                await self._run_check()
        now = time.monotonic()
        ready = self.passed_once and self.failing_since is None
        body = {
            "ready": ready,
            "passed_once": self.passed_once,
            "failing_for": 0.0 if self.failing_since is None else now - self.failing_since,
            "up_for": now - self.started,
            "error": self.error,
            "thresholds": self.thresholds.report(),
        }
        return (200 if ready else 503), body

    async def _run_check(self) -> None:
        assert self.check is not None
        if self._pending is None or self._pending.done():
            if inspect.iscoroutinefunction(self.check):
                self._pending = asyncio.ensure_future(self.check())
            else:
                # A thread of its own: sync run_remote calls filling the default pool must not
                # starve the health check.
                if self._executor is None:
                    self._executor = concurrent.futures.ThreadPoolExecutor(
                        max_workers=1, thread_name_prefix="chainyard-is-healthy"
                    )
                loop = asyncio.get_running_loop()
                self._pending = loop.run_in_executor(self._executor, self.check)
        pending = self._pending
        done, _ = await asyncio.wait({pending}, timeout=self.timeout)
        if not done:
            # A call that hangs is not called again meanwhile (a sync one holds a thread).
            self._failed(f"is_healthy did not return within {self.timeout:g} s")
            return
        try:
            result = pending.result()
            if inspect.isawaitable(result):  # a sync method that returned an awaitable
                result = await _with_timeout(result, self.timeout)
        except Exception as exc:
            self._failed(f"is_healthy raised {type(exc).__name__}: {exc}", exc)
            return
        if result is None or bool(result):
            self._passed()
        else:
            self._failed(f"is_healthy returned {result!r}")

    def _passed(self) -> None:
        if self.failing_since is not None and self.passed_once:
            log.info(
                "Health check passed again, after failing for %.0f s",
                time.monotonic() - self.failing_since,
            )
        self.passed_once = True
        self.failing_since = None
        self.error = None
        self._logged = -math.inf

    def _failed(self, reason: str, exc: BaseException | None = None) -> None:
        now = time.monotonic()
        first = self.failing_since is None
        if first:
            self.failing_since = now
        self.error = reason
        if first or now - self._logged >= LOG_EVERY:
            self._logged = now
            failing = now - (self.failing_since or now)
            suffix = f" (failing for {failing:.0f} s)" if not first else ""
            exc_info = (type(exc), exc, exc.__traceback__) if exc is not None and first else None
            log.warning("Health check failed: %s%s", reason, suffix, exc_info=exc_info)


async def _with_timeout(awaitable: Awaitable[Any], seconds: float) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


def serve_health(gate: HealthGate, app: ASGIApp) -> ASGIApp:
    """ASGI wrapper that answers the readiness request from the gate; everything else goes on."""
    from starlette.responses import JSONResponse

    async def wrapped(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if (
            scope.get("type") == "http"
            and scope.get("method") == "GET"
            and scope.get("path") == HEALTH_PATH
        ):
            status, body = await gate.report()
            await JSONResponse(body, status_code=status)(scope, receive, send)
            return
        await app(scope, receive, send)

    return wrapped


def startup_watchdog(seconds: float, is_serving: Callable[[], bool]) -> None:
    """`startup_threshold_seconds` while the chainlet's `__init__` still runs: the replica ends
    when it does not serve by then (once it serves, the runtime judges its health reports). A
    daemon thread, started before the chainlet is built."""

    def watch() -> None:
        time.sleep(seconds)
        if is_serving():
            return
        log.error(
            "the chainlet did not start serving within startup_threshold_seconds=%g (its "
            "__init__ still runs): the replica is restarted",
            seconds,
        )
        os._exit(STARTUP_EXIT)

    threading.Thread(target=watch, name="chainyard-startup-watchdog", daemon=True).start()
