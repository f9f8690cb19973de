"""Idle chainlets are looked at again now and then, spread out rather than all in one tick."""

from __future__ import annotations

import asyncio
import threading
import types
from typing import Any

import pytest

from chainyard.autoscaler import loop
from chainyard.autoscaler.loop import Autoscaler
from chainyard.domain.autoscaling import AutoscalingSettings
from chainyard.domain.autoscaling_policy import Decision, PolicyState, Traffic
from chainyard.services import autoscaler_store


def test_idle_rechecks_are_spread_over_the_second_half_of_the_recheck_time() -> None:
    scaler = Autoscaler(core=None, in_flight=dict)  # type: ignore[arg-type]
    idle = Traffic(window_average=0.0, burst_average=0.0)
    decision = Decision(replicas=1, state=PolicyState(), reason="steady")
    now = 1000.0
    ids = [f"c{i}" for i in range(2000)]
    # A fleet seen idle in one pass, as after a restart.
    for chainlet_id in ids:
        scaler._remember_quiet(chainlet_id, idle, decision, AutoscalingSettings(), now, None)
    due = sorted(scaler._quiet[c].recheck_at - now for c in ids)
    recheck = loop.IDLE_RECHECK_SECONDS
    assert recheck / 2 <= due[0] and due[-1] <= recheck  # never later than the recheck time
    # Spread: each tenth of the span holds a share of them, none holds most.
    tenths = [0] * 10
    for seconds in due:
        tenths[min(9, int((seconds - recheck / 2) / (recheck / 20)))] += 1
    assert all(50 <= n <= 400 for n in tenths), tenths


def test_decisions_are_made_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle pass decides for thousands of chainlets; on the event loop, that held up every
    request meanwhile."""
    fleet = [
        autoscaler_store.Managed(f"c{i}", 1, AutoscalingSettings().to_dict(), None, False)
        for i in range(300)
    ]
    glances = [autoscaler_store.Glance(m.chainlet_id, 1, False) for m in fleet]
    monkeypatch.setattr(autoscaler_store, "glance", lambda core, busy, **_kw: glances)
    monkeypatch.setattr(autoscaler_store, "managed_by_id", lambda core, ids, **_kw: fleet)
    monkeypatch.setattr(autoscaler_store, "apply", lambda core, decisions, **_kw: decisions)
    # The store's functions are replaced above; the loop asks the core only whether requests wait.
    core = types.SimpleNamespace(requests_waiting=lambda: False)
    scaler = Autoscaler(core=core, in_flight=dict)  # type: ignore[arg-type]
    threads: list[str] = []
    decide_all = scaler._decide

    def recorded(chainlets: list[autoscaler_store.Managed], now: float) -> Any:
        threads.append(threading.current_thread().name)
        return decide_all(chainlets, now)

    scaler._decide = recorded  # type: ignore[method-assign]

    async def main() -> str:
        await scaler.tick()  # the first tick is an idle pass over every chainlet
        return threading.current_thread().name

    loop_thread = asyncio.run(main())
    assert threads and loop_thread not in threads
    # Every chainlet was decided on, and each is now remembered as quiet.
    assert set(scaler._quiet) == {m.chainlet_id for m in fleet}
