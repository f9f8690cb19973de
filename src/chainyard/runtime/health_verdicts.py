"""What a runtime does with a replica's health report (chains/replica_health.py).

The replica answers its readiness request with how long the chainlet's `is_healthy` has been
failing and the thresholds of its `health_checks`; both runtimes (local, Ray) judge the report
here, as Baseten's probes do (https://docs.baseten.co/development/model/health-checks):

- not passed once yet (startup): the replica stays STARTING; past `startup_threshold_seconds`
  it is restarted;
- failing for `stop_traffic_threshold_seconds`: out of traffic (shown STARTING, not routed, not
  restarted); it serves again once `is_healthy` passes;
- failing for `restart_threshold_seconds` (failures in the first `restart_check_delay_seconds`
  after the start not counted): restarted, with a message that names `is_healthy`.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp

from chainyard import replica_auth
from chainyard.runtime.base import ReplicaPhase


class Action(enum.StrEnum):
    SERVE = "serve"
    STARTING = "starting"
    OUT_OF_TRAFFIC = "out_of_traffic"
    RESTART = "restart"


@dataclasses.dataclass(frozen=True)
class Verdict:
    action: Action
    message: str | None = None


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def judge(status: int, body: Any) -> Verdict | None:
    """The verdict on one readiness answer; None when it is not a health report (the runtime then
    goes by the status alone)."""
    if status == 200:
        return Verdict(Action.SERVE)
    if not isinstance(body, dict) or not isinstance(body.get("thresholds"), dict):
        return None
    limits = body["thresholds"]
    startup = _seconds(limits.get("startup_threshold_seconds"))
    stop_traffic = _seconds(limits.get("stop_traffic_threshold_seconds"))
    restart = _seconds(limits.get("restart_threshold_seconds"))
    delay = _seconds(limits.get("restart_check_delay_seconds"))
    failing_for = _seconds(body.get("failing_for"))
    up_for = _seconds(body.get("up_for"))
    reason = str(body.get("error") or "is_healthy failed")
    if not body.get("passed_once"):
        if startup and up_for >= startup:
            return Verdict(
                Action.RESTART,
                f"is_healthy did not pass within startup_threshold_seconds={startup:g} "
                f"(last check: {reason}): the replica is restarted",
            )
        return Verdict(Action.STARTING, f"waiting for is_healthy to pass (last check: {reason})")
    counted = min(failing_for, max(0.0, up_for - delay))
    if restart and counted >= restart:
        return Verdict(
            Action.RESTART,
            f"is_healthy failed for {failing_for:.0f} s, past restart_threshold_seconds="
            f"{restart:g} (last check: {reason}): the replica is restarted",
        )
    if stop_traffic and failing_for >= stop_traffic:
        return Verdict(
            Action.OUT_OF_TRAFFIC,
            f"is_healthy has failed for {failing_for:.0f} s, past "
            f"stop_traffic_threshold_seconds={stop_traffic:g} (last check: {reason})",
        )
    # Failing, but not for long enough to act: it keeps serving, as on Baseten.
    return Verdict(Action.SERVE)


async def probe(
    session: aiohttp.ClientSession, url: str, credential: str | None = None
) -> Verdict | None:
    """Asks a replica's readiness URL, with the replica's credential (replica_auth.py);
    None when it does not answer, or answers no report."""
    try:
        async with session.get(url, headers=replica_auth.headers(credential)) as response:
            if response.status == 200:
                return Verdict(Action.SERVE)
            try:
                body = await response.json(content_type=None)
            except ValueError:
                return None
            return judge(response.status, body)
    except (aiohttp.ClientError, TimeoutError):
        return None


class Judged(Protocol):
    """What both runtimes' replica records have, for `apply`."""

    spec: Any
    phase: ReplicaPhase
    message: str | None
    started: float
    ready_at: float | None


def apply(
    replica: Judged,
    verdict: Verdict,
    *,
    on_ready: Callable[[str, float], None],
    note: Callable[[str, str], None],
    restart: Callable[[str], None],
) -> None:
    """Acts on a verdict: `note(level, text)` adds a line to the replica's logs; `restart(reason)`
    fails the replica with the reason (the reconciler logs it and starts another) and stops it."""
    rid = replica.spec.replica_id
    if verdict.action == Action.SERVE:
        if replica.phase == ReplicaPhase.STARTING:
            replica.phase = ReplicaPhase.READY
            replica.message = None
            if replica.ready_at is None:
                on_ready(replica.spec.chainlet_id, time.monotonic() - replica.started)
            else:
                note("INFO", f"replica {rid}: is_healthy passes again, back in traffic")
        replica.ready_at = time.monotonic()
    elif verdict.action == Action.STARTING:
        replica.message = verdict.message
    elif verdict.action == Action.OUT_OF_TRAFFIC:
        if replica.phase == ReplicaPhase.READY:
            replica.phase = ReplicaPhase.STARTING
            note("WARNING", f"replica {rid} stopped receiving traffic: {verdict.message}")
        replica.message = f"out of traffic: {verdict.message}"
    else:
        restart(verdict.message or "is_healthy failed")
