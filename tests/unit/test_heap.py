"""The garbage collector's settings while a server runs (heap.py)."""

from __future__ import annotations

import gc
import pathlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from chainyard import heap
from tests.support.server import fast_config


class _Holder:
    """A container object the collector tracks."""


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def _walked(obj: object) -> bool:
    return any(o is obj for o in gc.get_objects())


def test_settle_freezes_what_exists_and_thaw_gives_it_back(restored: None) -> None:
    before = _Holder()
    previous = heap.settle()
    assert not _walked(before), "an object built before settle() is still walked by collections"
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
    after = _Holder()
    assert _walked(after), "objects made while serving must still be collected"
    heap.thaw(previous)
    assert gc.get_freeze_count() == 0
    assert _walked(before)
    assert gc.get_threshold() == previous


def test_a_frozen_object_is_still_freed_when_unreferenced(restored: None) -> None:
    import weakref

    obj = _Holder()
    ref = weakref.ref(obj)
    previous = heap.settle()
    del obj
    assert ref() is None
    heap.thaw(previous)


def test_a_running_server_freezes_its_start_up_and_thaws_on_exit(tmp_path: pathlib.Path) -> None:
    from chainyard.server import create_app

    thresholds = gc.get_threshold()
    config = fast_config(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path}/c.db")
    with TestClient(create_app(config)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds
