"""The control-plane benchmark still runs against the code as it is: a small run of it, on
SQLite, through both phases. It hooks into the server's loops by name (bench/control_plane.py
`_LOOPS`), so a renamed service function broke it once without any other test noticing. Times
are not checked; the benchmark's own checks are (isolation, every update promoted)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_quick_run_measures_every_endpoint_and_the_loops(tmp_path: pathlib.Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "control_plane.py"),
            "--db",
            "sqlite",
            "--chains",
            "60",
            "--iterations",
            "15",
            "--unpaged-iterations",
            "3",
            "--warmup",
            "2",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "error line" not in done.stdout, done.stdout[-3000:]
    result = json.loads((tmp_path / "control_plane-sqlite.json").read_text())
    assert result["population"]["rows"]["chains"] == 65
    for phase in ("loops_paused", "loops_running"):
        endpoints = result["phases"][phase]["endpoints"]
        assert "update_instance_types" in endpoints and "get_chain" in endpoints
        assert all(e["n"] > 0 and e["p50_ms"] > 0 for e in endpoints.values())
    # Both loops were instrumented and ticked while the requests ran.
    loops = result["phases"]["loops_running"]["loops"]
    assert loops["reconciler"]["ticks"] > 0 and loops["autoscaler"]["ticks"] > 0
    assert loops["autoscaler"]["items_per_tick"] > 0
