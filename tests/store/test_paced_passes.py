"""The loops' fleet-wide reads, paced (services/pacing.py), find the same rows as unpaced ones,
over a fleet large enough to take several slices, on SQLite and PostgreSQL."""

from __future__ import annotations

import pathlib
import sys

from sqlalchemy import func, or_, select

from chainyard.server import build_core
from chainyard.services import autoscaler_store, reconciler_store
from chainyard.services.pacing import Pacer, unpaced
from chainyard.store.chains import Chainlet
from tests.support.server import fast_config

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import control_plane  # noqa: E402

# 700 chains with 2 chainlets in production: 1,400 running chainlets, three steps of 500 rows.
CHAINS = 700


def _every_checkpoint_rests() -> tuple[Pacer, list[float]]:
    sleeps: list[float] = []
    return Pacer(slice_seconds=0.0, sleep=sleeps.append), sleeps


def test_paced_glances_see_every_running_chainlet(
    database_url: str, tmp_path: pathlib.Path
) -> None:
    control_plane.populate(database_url, CHAINS, 1, seed=3, running_fraction=1.0)
    core = build_core(fast_config(data_dir=tmp_path / "data", database_url=database_url))
    try:
        with core.db.read() as session:
            running = session.scalar(
                select(func.count())
                .select_from(Chainlet)
                .where(or_(Chainlet.desired_replicas > 0, Chainlet.ready_replicas > 0))
            )
        assert running is not None and running > 1000

        pacer, sleeps = _every_checkpoint_rests()
        paced = reconciler_store.glance(core, pacer=pacer)
        assert len(sleeps) >= 3, "the scan should have been read in several slices"
        assert sorted(paced) == sorted(reconciler_store.glance(core, pacer=unpaced()))
        assert len({g.chainlet_id for g in paced}) == running

        pacer, sleeps = _every_checkpoint_rests()
        managed = autoscaler_store.glance(core, set(), pacer=pacer)
        assert len(sleeps) >= 3
        assert sorted(managed) == sorted(autoscaler_store.glance(core, set()))
        assert {g.chainlet_id for g in managed} == {g.chainlet_id for g in paced}

        pacer, sleeps = _every_checkpoint_rests()
        ids = {g.chainlet_id for g in paced}
        work = reconciler_store.load_chainlets(core, ids, pacer=pacer)
        assert {w.chainlet_id for w in work} == ids
        assert len(sleeps) >= 2
    finally:
        core.db.dispose()
