"""What a benchmark result records about where it ran: the machine and the commit measured."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pathlib
import platform
import subprocess
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def commit() -> str:
    """The commit measured, with `+dirty` when src/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}+dirty" if dirty else head or "unknown"


def cpu_probe_ms() -> float:
    """Milliseconds a fixed piece of pure Python takes here now, best of three. A shared machine
    runs faster or slower from one hour to the next; two runs' latencies compare only as far as
    their probes agree (ratios within one run compare regardless)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i % 7
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def finish(results: dict[str, Any], path: pathlib.Path, started: float, summary: str) -> None:
    """Stamps the end of a run on `results`, writes them to `path` and prints the summary."""
    results["run_seconds"] = round(time.perf_counter() - started, 1)
    results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(summary)
    print(f"\nload average: {results['load_average_before']} before, {os.getloadavg()} after")
    print(f"done in {results['run_seconds']}s, wrote {path}")
