"""The data-plane benchmark's pure parts: reading wrk's reports (captured from wrk 4.1 runs, in
wrk_samples/), its Lua script, the medians and ratios to the floor, and the goals' verdicts. The
benchmark itself needs wrk, Ray Serve and minutes of load, so it is not run here."""

from __future__ import annotations

import pathlib
import sys
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLES = pathlib.Path(__file__).resolve().parent / "wrk_samples"
sys.path.insert(0, str(ROOT / "bench"))
import data_plane  # noqa: E402
import wrk  # noqa: E402

Raw = dict[str, dict[str, list[dict[str, Any]]]]


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def test_a_clean_report_gives_rate_percentiles_and_no_failures() -> None:
    report = wrk.parse(sample("ok.txt"))
    assert report["rps"] == 2493.00
    assert report["requests"] == 7526
    assert report["duration_s"] == pytest.approx(3.02)
    assert report["p50_s"] == pytest.approx(5.54e-3)
    assert report["p75_s"] == pytest.approx(7.80e-3)
    assert report["p90_s"] == pytest.approx(11.20e-3)
    assert report["p99_s"] == pytest.approx(31.93e-3)
    assert report["failures"] == 0
    assert report["errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non_2xx": 0}


def test_non_2xx_answers_are_failures() -> None:
    report = wrk.parse(sample("non2xx.txt"))
    assert report["requests"] == 2880
    assert report["errors"]["non_2xx"] == 2880
    assert report["failures"] == 2880


def test_socket_errors_are_failures() -> None:
    read = wrk.parse(sample("read_errors.txt"))
    assert read["errors"]["read"] == 25963
    assert read["failures"] == 25963
    slow = wrk.parse(sample("timeout.txt"))
    assert slow["errors"]["timeout"] == 12
    assert slow["failures"] == 12


def test_latencies_in_seconds_and_trailing_blanks() -> None:
    report = wrk.parse(sample("seconds.txt"))
    assert report["p50_s"] == pytest.approx(1.5)
    assert report["p99_s"] == pytest.approx(1.5)
    assert report["rps"] == pytest.approx(1.98)


@pytest.mark.parametrize(
    ("text", "value"),
    [("812.00us", 812e-6), ("1.25ms", 1.25e-3), ("2.00s", 2.0), ("1.50m", 90.0), ("1h", 3600.0)],
)
def test_wrk_times(text: str, value: float) -> None:
    assert wrk.seconds(text) == pytest.approx(value)


def test_no_report_is_an_error() -> None:
    with pytest.raises(ValueError, match="no wrk report"):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused\n")
    without_latency = "\n".join(
        line for line in sample("ok.txt").splitlines() if "%" not in line or "Stdev" in line
    )
    with pytest.raises(ValueError, match="--latency"):
        wrk.parse(without_latency)


def test_the_lua_script_posts_the_body_file_with_the_headers(tmp_path: pathlib.Path) -> None:
    script = wrk.lua_script(tmp_path / "body.json", {"Authorization": "Api-Key a.b"})
    assert f"io.open(\"{tmp_path / 'body.json'}\", 'rb')" in script
    assert 'wrk.method = "POST"' in script
    assert 'wrk.headers["Authorization"] = "Api-Key a.b"' in script
    with pytest.raises(ValueError):
        wrk.lua_script(tmp_path / "body.json", {"X": "line\nbreak"})


def run(rps: float, p50: float, failures: int = 0) -> dict[str, Any]:
    return {
        "rps": rps,
        "p50_s": p50,
        "p90_s": p50,
        "p99_s": p50,
        "requests": 100,
        "failures": failures,
    }


def test_cells_are_medians_over_rounds_and_failed_runs_count() -> None:
    cell = data_plane.summarize_cell(
        [run(100, 0.010), run(300, 0.030, failures=2), run(200, 0.020), {"error": "wrk exited 1"}]
    )
    assert cell["rps"] == 200
    assert cell["p50_s"] == 0.020
    assert cell["failures"] == 2
    assert cell["failed_runs"] == 1
    assert cell["rounds"] == 4
    nothing = {**run(0, 0.0), "requests": 0}
    assert data_plane.run_failed(nothing)


def raw_for(floor_rps: float, cy_rps: float, floor_p50: float, cy_p50: float) -> Raw:
    cells = ("small-c1", "small-c16", "small-c64")
    return {
        "floor": {k: [run(floor_rps, floor_p50)] * 3 for k in cells},
        "chainyard": {k: [run(cy_rps, cy_p50)] * 3 for k in cells},
    }


def test_ratios_to_the_floor_and_goals_met() -> None:
    summary = data_plane.summarize(raw_for(1000, 600, 0.001, 0.0015))
    cell = summary["chainyard"]["small-c16"]
    assert cell["rps_vs_floor"] == 0.6
    assert cell["p50_vs_floor"] == 1.5
    assert cell["rps_vs_floor_paired"] == 0.6
    assert "rps_vs_floor" not in summary["floor"]["small-c16"]
    goals = data_plane.evaluate_goals(summary, {"chainyard": 1}, queue_bound=320)
    verdicts = {g["goal"]: g["met"] for g in goals if g["target"] == "chainyard"}
    assert verdicts == {
        "rps at 16 connections >= 0.5 x floor": True,
        "p50 at 1 connection <= 2.0 x floor": True,
        "no failed request up to the queue bound": True,
        # One worker count: nothing to compare.
        "rps grows with worker processes": None,
    }


def test_goals_not_met() -> None:
    raw = raw_for(1000, 100, 0.001, 0.011)
    raw["chainyard"]["small-c64"] = [run(100, 0.5, failures=1)] * 3
    # Past the queue bound, failures (429s) are what the bound promises, not a missed goal.
    raw["chainyard"]["small-c400"] = [run(100, 0.5, failures=50)]
    goals = data_plane.evaluate_goals(data_plane.summarize(raw), {"chainyard": 1}, 320)
    chainyard = {g["goal"]: g for g in goals if g["target"] == "chainyard"}
    assert chainyard["rps at 16 connections >= 0.5 x floor"]["met"] is False
    assert chainyard["p50 at 1 connection <= 2.0 x floor"]["met"] is False
    failed = chainyard["no failed request up to the queue bound"]
    assert (failed["met"], failed["value"]) == (False, 3)


def test_throughput_must_grow_with_every_worker_count() -> None:
    summary = {
        "floor": {},
        "chainyard": {"small-c64": {"rps": 100.0, "failures": 0, "failed_runs": 0}},
        "chainyard-w2": {"small-c64": {"rps": 180.0, "failures": 0, "failed_runs": 0}},
        "chainyard-w4": {"small-c64": {"rps": 170.0, "failures": 0, "failed_runs": 0}},
    }
    workers = {"chainyard": 1, "chainyard-w2": 2, "chainyard-w4": 4}
    growth = data_plane.evaluate_goals(summary, workers, 320)[-1]
    assert growth["goal"] == "rps grows with worker processes"
    assert growth["value"] == [(1, 100.0), (2, 180.0), (4, 170.0)]
    assert growth["met"] is False
    del summary["chainyard-w4"], workers["chainyard-w4"]
    assert data_plane.evaluate_goals(summary, workers, 320)[-1]["met"] is True


def test_rounds_rotate_the_systems() -> None:
    names = ["floor", "chainyard", "ray"]
    firsts = [data_plane.rotated(names, i)[0] for i in range(3)]
    assert firsts == names
    assert sorted(data_plane.rotated(names, 1)) == sorted(names)


def test_ttfb_percentiles() -> None:
    samples = [{"ttfb_s": i / 1000, "total_s": 0.15 + i / 1000} for i in range(1, 11)]
    summary = data_plane.summarize_ttfb(samples)
    assert summary["ttfb_p50_s"] == 0.005
    assert summary["ttfb_p90_s"] == 0.009
    assert summary["total_p50_s"] == pytest.approx(0.155)
    assert summary["samples"] == 10


def test_cpu_per_request_is_a_median_by_process() -> None:
    runs = [
        {**run(100, 0.01), "cpu_s": {"server": 0.5, "replicas": 0.1}},
        {**run(100, 0.01), "cpu_s": {"server": 0.7}},
        {**run(100, 0.01), "cpu_s": {"server": 0.6, "replicas": 0.3}},
    ]
    cpu = data_plane.summarize_cell(runs)["cpu_ms_per_request"]
    # 100 requests a run: 5, 7 and 6 ms for the server; the run without replicas counts as 0.
    assert cpu == {"total": 7.0, "server": 6.0, "replicas": 1.0}
    assert list(cpu) == ["total", "server", "replicas"]
