"""The async benchmark still runs against the code as it is: a tiny run of bench/async.py (a
backlog of 60). It restarts a server with the runner switched off and on by its settings and
reads the queue's rows from the SQLite file, all of which a rename could break unnoticed. Times
are not checked; that every request was enqueued, drained and succeeded is."""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_tiny_run_enqueues_drains_and_compares(tmp_path: pathlib.Path) -> None:
    backlog = 60
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "async.py"),
            "--backlog",
            str(backlog),
            "--enqueue",
            "20",
            "--live-enqueue",
            "5",
            "--sync-seconds",
            "1",
            "--sync-rounds",
            "1",
            "--warmup",
            "1",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((tmp_path / "async.json").read_text())
    assert result["enqueue"]["n"] == 20 and result["enqueue"]["p50_ms"] > 0
    assert result["enqueue_live"]["n"] == 5
    assert result["drain"]["rows"]["statuses"] == {"SUCCEEDED": backlog}
    assert result["drain"]["rows"]["succeeded"] == backlog
    assert result["drain"]["rows"]["rate"] > 0
    assert result["sync"]["rps_median"] > 0
    assert all(run["failures"] == 0 for run in result["sync"]["runs"])
    assert set(result["goals"]) == {"enqueue_p50_ms", "drain_vs_sync"}
