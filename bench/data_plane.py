"""Data-plane benchmark (issue 17): what chainyard's inference path costs against a floor and
against Ray Serve, all three serving the same two-step chain, measured in one run, interleaved.

The chain (bench/chains/two_step.py): Entry parses `{"x": 41}` and calls Dep once, both taking up
to 64 calls at a time, one replica each. Its streaming twin (two_step_stream.py) passes on four
chunks Dep sends 50 ms apart. The systems (bench/data_plane_targets.py):

- **floor**: the two steps as two bare uvicorn processes (uvloop, httptools, raw ASGI), Entry
  calling Dep over an aiohttp keep-alive session: HTTP and nothing else.
- **chainyard**: a real `chainyard serve` (local runtime, SQLite, `--rate-limit 0`, the sandbox
  default), the chains pushed with the CLI, called at
  `/chains/{id}/environments/production/run_remote` with `Authorization: Api-Key`. One server per
  `--chainyard-workers` count N, started with `--workers N` (default 0, 1 and 2: everything in one
  process, then a controller and one or two worker processes).
- **Ray Serve 2.60**: proxy -> Entry deployment -> DeploymentHandle -> Dep deployment,
  `max_ongoing_requests=64`, a local Ray in a child process.

Measured with `wrk` (POST through a Lua script; `--latency`): each cell (a body and a number of
connections: `{"x": 41}` at 1, 16, 64 connections, and a 1 MB body at 1 and 16) runs on every
system in turn, round after round, the order of the systems rotating each round; a cell's figure
is the median of its rounds. Failures: wrk's non-2xx answers and socket errors, and runs with no
answer at all. Then the time to first byte of the streamed answer: sequential calls from a Python
client (httpx, keep-alive), from sending until the first body chunk arrives.

The goals of issue 17 are evaluated and printed, never asserted: chainyard's throughput at 16
connections >= 0.5 x the floor's, its p50 at one connection <= 2 x the floor's, no failed request
up to the queue bound, and throughput (at 64 connections) that grows with worker processes.

Usage: python bench/data_plane.py [--quick] [--duration 5] [--rounds 3] [--targets floor,...]
See bench/README.md; results and their reading are in docs/bench.md.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import pathlib
import shutil
import signal
import statistics
import sys
import tempfile
import time
from typing import Any

import data_plane_targets as targets
import httpx
import run_info
import wrk
from data_plane_targets import STREAMED, Target, X

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIG_PAD = 1 << 20  # the 1 MB body: {"x": 41, "pad": "aaaa..."}
# chainyard queues up to 256 requests per chainlet behind its replicas' slots
# (gateway/router.py DEFAULT_QUEUE_LIMIT) before it answers 429.
QUEUE_LIMIT = 256
GOAL_RPS_RATIO = 0.5  # at 16 connections, of the floor's
GOAL_P50_RATIO = 2.0  # at 1 connection, of the floor's
SETTLE_SECONDS = 0.5


def cell_key(body: str, connections: int) -> str:
    return f"{body}-c{connections}"


def cells(connections: list[int], big_connections: list[int]) -> list[tuple[str, int]]:
    return [("small", c) for c in connections] + [("1mb", c) for c in big_connections]


def rotated(names: list[str], round_no: int) -> list[str]:
    """Each round starts with the next system, so none is always measured first."""
    shift = round_no % len(names) if names else 0
    return names[shift:] + names[:shift]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def run_failed(run: dict[str, Any]) -> bool:
    """A wrk run that measured nothing: wrk could not report, or no request was answered
    (wrk counts a request that never ends as neither an answer nor an error)."""
    return "error" in run or run.get("requests", 0) == 0


def summarize_cell(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds' wrk runs of one system in one cell; failures are summed."""
    ok = [r for r in runs if not run_failed(r)]

    def median(key: str) -> float | None:
        value = _median([r[key] for r in ok])
        return None if value is None else round(value, 1 if key == "rps" else 6)

    return {
        "rps": median("rps"),
        "p50_s": median("p50_s"),
        "p90_s": median("p90_s"),
        "p99_s": median("p99_s"),
        "requests": sum(r["requests"] for r in ok),
        "failures": sum(r["failures"] for r in ok),
        "failed_runs": len(runs) - len(ok),
        "rounds": len(runs),
        "cpu_ms_per_request": cpu_per_request(ok),
    }


def cpu_per_request(runs: list[dict[str, Any]]) -> dict[str, float]:
    """CPU milliseconds per answered request, by process label and in all ("total"): the median
    over the runs that recorded it."""
    per_run = []
    for run in runs:
        if run.get("cpu_s") and run["requests"]:
            ms = {k: v * 1000 / run["requests"] for k, v in run["cpu_s"].items()}
            per_run.append({**ms, "total": sum(ms.values())})
    labels = dict.fromkeys(k for ms in per_run for k in ms)
    medians = {k: round(statistics.median([ms.get(k, 0.0) for ms in per_run]), 3) for k in labels}
    return dict(sorted(medians.items(), key=lambda kv: -kv[1]))


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def paired_ratio(runs: list[dict[str, Any]], floor_runs: list[dict[str, Any]], key: str) -> Any:
    """The median of each round's own ratio to the floor: a check on drift during the run."""
    pairs = [
        r[key] / f[key]
        for r, f in zip(runs, floor_runs, strict=False)
        if not run_failed(r) and not run_failed(f) and f[key]
    ]
    return round(statistics.median(pairs), 3) if pairs else None


def summarize(raw: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    """Per system and cell: medians, and the ratios to the floor (rps and p50)."""
    summary: dict[str, dict[str, Any]] = {}
    floor = raw.get("floor", {})
    for name, by_cell in raw.items():
        summary[name] = {}
        for key, runs in by_cell.items():
            cell = summarize_cell(runs)
            if name != "floor" and key in floor:
                base = summarize_cell(floor[key])
                cell["rps_vs_floor"] = ratio(cell["rps"], base["rps"])
                cell["p50_vs_floor"] = ratio(cell["p50_s"], base["p50_s"])
                cell["rps_vs_floor_paired"] = paired_ratio(runs, floor[key], "rps")
                cell["p50_vs_floor_paired"] = paired_ratio(runs, floor[key], "p50_s")
            summary[name][key] = cell
    return summary


def _goal(goal: str, target: str, value: Any, met: bool | None, note: str = "") -> dict[str, Any]:
    return {"goal": goal, "target": target, "value": value, "met": met, "note": note}


def evaluate_goals(
    summary: dict[str, dict[str, Any]], workers: dict[str, int], queue_bound: int
) -> list[dict[str, Any]]:
    """Issue 17's goals for every system measured against the floor (they are chainyard's; Ray's
    rows are for comparison). `met` is None when the run did not measure what a goal needs."""
    goals: list[dict[str, Any]] = []
    for name, by_cell in summary.items():
        if name == "floor":
            continue
        rps = by_cell.get(cell_key("small", 16), {}).get("rps_vs_floor")
        goals.append(
            _goal(
                f"rps at 16 connections >= {GOAL_RPS_RATIO} x floor",
                name,
                rps,
                None if rps is None else rps >= GOAL_RPS_RATIO,
            )
        )
        p50 = by_cell.get(cell_key("small", 1), {}).get("p50_vs_floor")
        goals.append(
            _goal(
                f"p50 at 1 connection <= {GOAL_P50_RATIO} x floor",
                name,
                p50,
                None if p50 is None else p50 <= GOAL_P50_RATIO,
            )
        )
        within = {k: c for k, c in by_cell.items() if int(k.rsplit("-c", 1)[1]) <= queue_bound}
        failed = sum(c["failures"] + c["failed_runs"] for c in within.values())
        most = max((int(k.rsplit("-c", 1)[1]) for k in within), default=0)
        goals.append(
            _goal(
                "no failed request up to the queue bound",
                name,
                failed,
                None if not within else failed == 0,
                f"measured up to {most} connections; bound {queue_bound}",
            )
        )
    # Over worker processes (0, the one-process shape, is a different design, not a count).
    scaling = sorted((n, name) for name, n in workers.items() if name in summary and n >= 1)
    key = cell_key("small", 64)
    rates = [(n, summary[name].get(key, {}).get("rps")) for n, name in scaling]
    measured = [(n, r) for n, r in rates if r is not None]
    if len(measured) < 2:
        goals.append(
            _goal(
                "rps grows with worker processes",
                "chainyard",
                measured,
                None,
                "needs two or more --chainyard-workers counts and the 64-connection cell",
            )
        )
    else:
        grows = all(b[1] > a[1] for a, b in itertools.pairwise(measured))
        goals.append(
            _goal("rps grows with worker processes", "chainyard", measured, grows, "at 64 conn.")
        )
    return goals


def summarize_ttfb(samples: list[dict[str, float]]) -> dict[str, Any]:
    first = [s["ttfb_s"] for s in samples]
    total = [s["total_s"] for s in samples]
    return {
        "samples": len(samples),
        "ttfb_p50_s": _percentile(first, 50),
        "ttfb_p90_s": _percentile(first, 90),
        "total_p50_s": _percentile(total, 50),
    }


# --- measuring ------------------------------------------------------------------------------------


def ttfb(target: Target, samples: int) -> list[dict[str, float]]:
    """`samples` streamed calls one after another on one keep-alive connection (after one untimed
    call): from sending the request until the first body chunk, and until the last."""
    out = []
    with httpx.Client(headers=target.headers, timeout=60) as client:
        for i in range(samples + 1):
            started = time.perf_counter()
            with client.stream("POST", target.stream_url, json={"x": X}) as response:
                chunks = response.iter_raw()
                first = next(chunks, b"")
                first_at = time.perf_counter()
                body = first + b"".join(chunks)
            ended = time.perf_counter()
            if response.status_code != 200 or body != STREAMED:
                raise RuntimeError(f"{target.name} stream: {response.status_code} {body[:200]!r}")
            if i:
                out.append({"ttfb_s": first_at - started, "total_s": ended - started})
    return out


def prepare(work_dir: pathlib.Path, systems: list[Target]) -> dict[tuple[str, str], pathlib.Path]:
    """Body files and one wrk script per system and body."""
    bodies = {
        "small": f'{{"x": {X}}}',
        "1mb": f'{{"x": {X}, "pad": "{"a" * BIG_PAD}"}}',
    }
    scripts = {}
    for body, text in bodies.items():
        body_file = work_dir / f"body-{body}.json"
        body_file.write_text(text)
        for target in systems:
            script = work_dir / f"{target.name}-{body}.lua"
            script.write_text(wrk.lua_script(body_file, target.headers))
            scripts[(target.name, body)] = script
    return scripts


def measure(systems: list[Target], args: argparse.Namespace, work_dir: pathlib.Path) -> Any:
    scripts = prepare(work_dir, systems)
    by_name = {t.name: t for t in systems}
    print("warming up", flush=True)
    for target in systems:
        targets.check(target, 0)
        targets.check(target, BIG_PAD)
        wrk.run(target.url, scripts[(target.name, "small")], 16, args.warmup, args.wrk_threads)
        wrk.run(target.url, scripts[(target.name, "1mb")], 16, 1, args.wrk_threads)
        ttfb(target, 3)
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {t.name: {} for t in systems}
    ttfb_raw: dict[str, list[dict[str, float]]] = {t.name: [] for t in systems}
    load: list[list[float]] = []
    names = list(by_name)
    for round_no in range(args.rounds):
        order = rotated(names, round_no)
        for body, connections in cells(args.connections, args.big_connections):
            key = cell_key(body, connections)
            for name in order:
                time.sleep(SETTLE_SECONDS)
                cpu_before = targets.cpu_seconds(by_name[name].pids)
                run = wrk.run(
                    by_name[name].url,
                    scripts[(name, body)],
                    connections,
                    args.duration,
                    args.wrk_threads,
                )
                run["cpu_s"] = targets.cpu_used(cpu_before, targets.cpu_seconds(by_name[name].pids))
                raw[name].setdefault(key, []).append(run)
                print(f"  round {round_no + 1} {key:<10} {name:<14} {_brief(run)}", flush=True)
        for name in order:
            ttfb_raw[name] += ttfb(by_name[name], args.ttfb_samples)
        load.append(list(os.getloadavg()))
        print(f"round {round_no + 1} done, load average {load[-1]}", flush=True)
    return raw, ttfb_raw, load


def _brief(run: dict[str, Any]) -> str:
    if run_failed(run):
        return f"FAILED {run.get('error', 'no answer')}"
    return (
        f"{run['rps']:>9.1f} rps  p50 {run['p50_s'] * 1000:7.2f} ms  "
        f"p99 {run['p99_s'] * 1000:7.2f} ms  failures {run['failures']}"
    )


# --- reporting ------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def table(results: dict[str, Any]) -> str:
    summary, names = results["summary"], list(results["summary"])
    p = results["params"]
    lines = [
        f"data plane: medians of {p['rounds']} rounds of {p['duration']} s per cell "
        f"(commit {results['commit']})",
        f"{'cell':<10} {'system':<14} {'rps':>9} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7} "
        f"{'rps/floor':>10} {'p50/floor':>10}",
    ]
    keys = list(dict.fromkeys(k for name in names for k in summary[name]))
    for key in keys:
        for i, name in enumerate(names):
            c = summary[name].get(key)
            if c is None:
                continue
            failed = c["failures"] + c["failed_runs"]
            rps = "-" if c["rps"] is None else f"{c['rps']:.0f}"
            lines.append(
                f"{key if i == 0 else '':<10} {name:<14} {rps:>9} {_ms(c['p50_s']):>8} "
                f"{_ms(c['p99_s']):>8} {failed:>7} {_x(c.get('rps_vs_floor')):>10} "
                f"{_x(c.get('p50_vs_floor')):>10}"
            )
    lines += ["", "CPU ms per request, at 16 connections (the system's own processes)"]
    for name in names:
        cpu = summary[name].get(cell_key("small", 16), {}).get("cpu_ms_per_request")
        if cpu:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in list(cpu.items())[1:6] if v >= 0.01)
            lines.append(f"  {name:<14} {cpu['total']:.2f} ms: {parts}")
    lines += ["", "time to first byte of a streamed answer (4 chunks, 50 ms apart)"]
    for name, t in results["ttfb"].items():
        lines.append(
            f"  {name:<14} p50 {_ms(t['ttfb_p50_s'])} ms, p90 {_ms(t['ttfb_p90_s'])} ms; "
            f"whole answer p50 {_ms(t['total_p50_s'])} ms ({t['samples']} calls)"
        )
    lines += ["", "goals (issue 17; chainyard's, Ray's for comparison): reported, not asserted"]
    for g in results["goals"]:
        verdict = {True: "met", False: "NOT MET", None: "not measured"}[g["met"]]
        value = g["value"] if not isinstance(g["value"], float) else f"{g['value']:.2f}"
        note = f" ({g['note']})" if g["note"] else ""
        lines.append(f"  {g['target']:<14} {g['goal']:<44} {value!s:<10} {verdict}{note}")
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--targets",
        default="floor,chainyard,ray",
        help="systems to measure: floor, chainyard, chainyard-gw (dependency calls through the "
        "gateway), ray",
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per system and cell")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of untimed load first")
    parser.add_argument("--connections", type=_ints, default=[1, 16, 64])
    parser.add_argument("--big-connections", type=_ints, default=[1, 16], help="1 MB body")
    parser.add_argument("--wrk-threads", type=int, default=1, help="at most the connections")
    parser.add_argument("--ttfb-samples", type=int, default=20, help="streamed calls per round")
    parser.add_argument(
        "--chainyard-workers",
        type=_ints,
        default=[0, 1, 2],
        help="one `chainyard serve --workers N` per count (0: all in one process)",
    )
    parser.add_argument("--ray-cpus", type=int, default=8, help="logical CPUs for ray.init")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "bench" / "results")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s, 5 TTFB samples")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup, args.ttfb_samples = 1, 2, 1, 5
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - {"floor", "chainyard", "chainyard-gw", "ray"}
    if unknown:
        parser.error(f"unknown targets: {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk.wrk_binary()
    # A SIGTERM unwinds like Ctrl-C, so that the servers this run started are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "commit": run_info.commit(),
        "machine": run_info.machine(),
        "load_average_before": list(os.getloadavg()),
        "cpu_probe_ms_before": run_info.cpu_probe_ms(),
        "params": {k: str(v) if k == "out" else v for k, v in vars(args).items()},
        "queue_bound": targets.CONCURRENCY + QUEUE_LIMIT,
    }
    work_dir = pathlib.Path(tempfile.mkdtemp(prefix="chainyard-dp-"))
    try:
        with contextlib.ExitStack() as stack:
            systems: list[Target] = []
            if "floor" in args.targets:
                systems.append(stack.enter_context(targets.floor(work_dir)))
            if "chainyard" in args.targets:
                for n in args.chainyard_workers:
                    cy_dir = work_dir / f"chainyard-w{n}"
                    cy_dir.mkdir()
                    systems.append(stack.enter_context(targets.chainyard(cy_dir, n)))
            if "chainyard-gw" in args.targets:
                # Dependency calls through the gateway, as before they went straight to Dep.
                for n in args.chainyard_workers:
                    cy_dir = work_dir / f"chainyard-gw-w{n}"
                    cy_dir.mkdir()
                    systems.append(stack.enter_context(targets.chainyard(cy_dir, n, direct=False)))
            if "ray" in args.targets:
                systems.append(stack.enter_context(targets.ray_serve(work_dir, args.ray_cpus)))
            for target in systems:
                print(f"{target.name}: {target.url} {target.info}", flush=True)
            results["systems"] = {t.name: {"url": t.url, **t.info} for t in systems}
            raw, ttfb_raw, load = measure(systems, args, work_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    workers = {
        name: info["workers"]
        for name, info in results["systems"].items()
        if "workers" in info and info.get("direct_dependency_calls", True)
    }
    results["load_average_per_round"] = load
    results["cpu_probe_ms_after"] = run_info.cpu_probe_ms()
    results["summary"] = summarize(raw)
    results["ttfb"] = {name: summarize_ttfb(s) for name, s in ttfb_raw.items()}
    results["goals"] = evaluate_goals(results["summary"], workers, results["queue_bound"])
    results["runs"] = raw
    results["ttfb_samples"] = ttfb_raw
    name = "data_plane" + ("-quick" if args.quick else "")
    run_info.finish(results, args.out / f"{name}.json", started, table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
