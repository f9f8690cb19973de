"""`health_checks` thresholds (chains/replica_health.py), the replica's health gate, and what the
runtimes decide from its reports (runtime/health_verdicts.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from truss.base import truss_config

from chainyard.chains import replica_health
from chainyard.runtime.health_verdicts import Action, judge


def test_defaults_are_basetens() -> None:
    # https://docs.baseten.co/development/model/health-checks: 1800 s each, no delay.
    t = replica_health.thresholds_of(truss_config.HealthChecks())
    assert (t.startup, t.stop_traffic, t.restart, t.restart_delay) == (1800, 1800, 1800, 0)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"stop_traffic_threshold_seconds": 5}, "stop_traffic_threshold_seconds must be"),
        ({"restart_threshold_seconds": 3001}, "from 10 to 3000"),
        ({"restart_check_delay_seconds": 2000, "restart_threshold_seconds": 1500}, "3000"),
    ],
)
def test_values_baseten_refuses_are_refused(fields: dict[str, int], words: str) -> None:
    with pytest.raises(replica_health.HealthSettingsError, match=words):
        replica_health.thresholds_of(truss_config.HealthChecks(**fields), "Moody")


def _report(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ready": False,
        "passed_once": True,
        "failing_for": 0.0,
        "up_for": 100.0,
        "error": "is_healthy returned False",
        "thresholds": {
            "startup_threshold_seconds": 60,
            "stop_traffic_threshold_seconds": 10,
            "restart_threshold_seconds": 20,
            "restart_check_delay_seconds": 0,
        },
    }
    body.update(over)
    return body


def test_verdicts_follow_the_thresholds() -> None:
    assert judge(200, {"ready": True}).action == Action.SERVE  # type: ignore[union-attr]
    assert judge(503, _report(failing_for=5)).action == Action.SERVE  # type: ignore[union-attr]
    out = judge(503, _report(failing_for=12))
    assert out is not None and out.action == Action.OUT_OF_TRAFFIC
    assert "stop_traffic_threshold_seconds=10" in (out.message or "")
    restart = judge(503, _report(failing_for=21))
    assert restart is not None and restart.action == Action.RESTART
    assert "is_healthy" in (restart.message or "") and "restart_threshold_seconds=20" in (
        restart.message or ""
    )


def test_startup_and_restart_delay() -> None:
    waiting = judge(503, _report(passed_once=False, up_for=30))
    assert waiting is not None and waiting.action == Action.STARTING
    late = judge(503, _report(passed_once=False, up_for=61))
    assert late is not None and late.action == Action.RESTART
    assert "startup_threshold_seconds=60" in (late.message or "")
    delayed = _report(failing_for=25, up_for=25)
    delayed["thresholds"]["restart_check_delay_seconds"] = 15
    # Only 10 s of failures count after the delay: out of traffic, not restarted yet.
    verdict = judge(503, delayed)
    assert verdict is not None and verdict.action == Action.OUT_OF_TRAFFIC


def test_an_answer_without_a_report_is_no_verdict() -> None:
    assert judge(503, {"ready": False}) is None
    assert judge(500, "oops") is None


def test_gate_counts_a_failing_streak_and_recovers() -> None:
    state = {"healthy": True}

    def is_healthy() -> bool:
        return state["healthy"]

    async def scenario() -> list[tuple[int, dict[str, Any]]]:
        gate = replica_health.HealthGate(
            is_healthy, replica_health.Thresholds(), started=time.monotonic(), interval=0
        )
        seen = [await gate.report()]
        state["healthy"] = False
        seen.append(await gate.report())
        seen.append(await gate.report())
        state["healthy"] = True
        seen.append(await gate.report())
        return seen

    seen = asyncio.run(scenario())
    assert [status for status, _ in seen] == [200, 503, 503, 200]
    assert seen[1][1]["error"] == "is_healthy returned False"
    assert seen[2][1]["failing_for"] >= seen[1][1]["failing_for"]
    assert seen[3][1]["failing_for"] == 0.0
    assert judge(*seen[2]) is not None


def test_gate_reports_a_raising_or_hanging_check() -> None:
    async def raising() -> bool:
        raise RuntimeError("gpu gone")

    async def hanging() -> bool:
        await asyncio.sleep(60)
        return True

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        thresholds = replica_health.Thresholds()
        started = time.monotonic()
        one = replica_health.HealthGate(raising, thresholds, started=started, interval=0)
        two = replica_health.HealthGate(
            hanging, thresholds, started=started, interval=0, timeout=0.05
        )
        return (await one.report())[1], (await two.report())[1]

    raised, hung = asyncio.run(scenario())
    assert raised["error"] == "is_healthy raised RuntimeError: gpu gone"
    assert not raised["passed_once"]
    assert hung["error"] == "is_healthy did not return within 0.05 s"
