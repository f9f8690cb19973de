"""Async inference benchmark (issue 19): how fast `async_run_remote` answers, and how fast a
backlog drains next to the sync path's throughput on the same chain, measured in one run.

1. A real `chainyard serve` (autoscale.Chainyard: local runtime, SQLite in its data dir,
   `--rate-limit 0`) with its async runner off (CHAINYARD_ASYNC_RUNNER=0), and the no-op chain
   bench/chains/noop_wide.py (one chainlet, 64 calls at a time) pushed, promoted and pinned to
   one replica.
2. **Sync throughput, before**: wrk on `/chains/{id}/production/run_remote` at as many
   connections as the per-deployment async cap (`--cap`, default 16: what the runner keeps in
   flight for one deployment), `--sync-rounds` runs of `--sync-seconds` after a warm-up.
3. **Enqueue latency**: `--enqueue` requests to `/chains/{id}/production/async_run_remote`, one
   after another on one keep-alive connection, no webhook, each timed with perf_counter from
   sending to the 201. The runner is off, so this is the route and the store alone.
4. **Backlog**: more requests, from `--fill-clients` concurrent clients, until `--backlog`
   requests are queued (the timed ones included); checked on `async_queue_status`.
5. **Drain**: the server is stopped (SIGTERM) and started again on the same data dir with the
   runner on; it drains the backlog while this process polls `async_queue_status`. The drain
   rate is measured from the rows themselves: (n - 1) / (last - first completion), by their
   `status_at` (read from the SQLite file), so the restart and the replica's start are not in
   it. The polls give a second figure, and the window in which the server's CPU is measured.
6. **Sync throughput, after**: as in 2, on the same server, now idle; then `--live-enqueue`
   enqueues timed as in 3 with the runner on (each request runs as it arrives).

The goals (enqueue p50 <= 5 ms; drain >= 0.8 x the sync rps, the median of every sync run
before and after) are reported, never asserted. CPU per request, by process (server, workers,
replica host, replicas), for the drain and for the sync runs, says where the time goes.

Usage: python bench/async.py [--quick] [--backlog 10000] [--enqueue 2000] [--out bench/results]
See bench/README.md; results and their reading are in docs/bench.md.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import datetime as dt
import os
import pathlib
import re
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from typing import Any

import data_plane_targets as targets
import httpx
import run_info
import wrk
from autoscale import API_KEY, Chainyard

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAIN = ROOT / "bench" / "chains" / "noop_wide.py"
CHAIN_NAME = "async-bench"
CHAINLET = "NoopWide"
HEADERS = {"Authorization": f"Api-Key {API_KEY}"}
# The server's settings for the runner (docs/async-inference.md).
RUNNER_SWITCH = "CHAINYARD_ASYNC_RUNNER"
CAP_SETTING = "CHAINYARD_ASYNC_CONCURRENCY_PER_DEPLOYMENT"
GOAL_ENQUEUE_P50_MS = 5.0
GOAL_DRAIN_RATIO = 0.8
POLL_SECONDS = 0.2


def percentiles(samples_s: list[float]) -> dict[str, Any]:
    """Nearest-rank percentiles, in milliseconds."""
    if not samples_s:
        return {"n": 0}
    ordered = sorted(samples_s)

    def rank(q: float) -> float:
        return round(
            ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.5) - 1))] * 1e3, 3
        )

    return {
        "n": len(ordered),
        "p50_ms": rank(0.50),
        "p90_ms": rank(0.90),
        "p99_ms": rank(0.99),
        "mean_ms": round(statistics.fmean(ordered) * 1e3, 3),
        "max_ms": round(ordered[-1] * 1e3, 3),
    }


def async_body(n: int) -> dict[str, Any]:
    return {"model_input": {"n": n}}


def enqueue_timed(url: str, first: int, count: int) -> list[float]:
    """`count` enqueues one after another on one keep-alive connection; seconds each."""
    samples = []
    with httpx.Client(headers=HEADERS, timeout=30) as client:
        for n in range(first, first + count):
            started = time.perf_counter()
            response = client.post(url, json=async_body(n))
            samples.append(time.perf_counter() - started)
            if response.status_code != 201:
                raise RuntimeError(f"enqueue answered {response.status_code}: {response.text}")
    return samples


async def _fill(url: str, first: int, count: int, clients: int) -> None:
    numbers = iter(range(first, first + count))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(headers=HEADERS, timeout=60, limits=limits) as client:

        async def worker() -> None:
            for n in numbers:
                response = await client.post(url, json=async_body(n))
                if response.status_code != 201:
                    raise RuntimeError(f"enqueue answered {response.status_code}: {response.text}")

        await asyncio.gather(*(worker() for _ in range(clients)))


def fill(url: str, first: int, count: int, clients: int) -> dict[str, Any]:
    started = time.perf_counter()
    asyncio.run(_fill(url, first, count, clients))
    seconds = time.perf_counter() - started
    return {
        "n": count,
        "clients": clients,
        "seconds": round(seconds, 2),
        "rate": _rate(count, seconds),
    }


def _rate(count: float, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


def sync_runs(
    cy: Chainyard, url: str, script: pathlib.Path, args: argparse.Namespace, when: str
) -> list[dict[str, Any]]:
    """A warm-up, then `--sync-rounds` wrk runs at `--cap` connections, with CPU per process."""
    roots = [cy.process.pid] if cy.process else []
    wrk.run(url, script, args.cap, args.warmup)
    found = []
    for round_no in range(args.sync_rounds):
        cpu_before = targets.cpu_seconds(roots)
        run = wrk.run(url, script, args.cap, args.sync_seconds)
        run["cpu_s"] = targets.cpu_used(cpu_before, targets.cpu_seconds(roots))
        run["when"] = when
        found.append(run)
        rps = run.get("rps", run.get("error"))
        print(
            f"  sync {when} {round_no + 1}: {rps} rps, failures {run.get('failures')}", flush=True
        )
    return found


def queue_counts(cy: Chainyard, chain_id: str) -> tuple[int, int]:
    body = cy.api.get(f"/chains/{chain_id}/production/async_queue_status").json()
    return int(body["num_queued_requests"]), int(body["num_in_progress_requests"])


def watch_drain(cy: Chainyard, chain_id: str, backlog: int, timeout: float) -> dict[str, Any]:
    """Polls the queue until it is empty. The window from the first poll that sees a request
    done to the poll that sees none left, with the server's CPU over it."""
    roots = [cy.process.pid] if cy.process else []
    started = time.monotonic()
    first: tuple[float, int, Any] | None = None
    deadline = started + timeout
    while time.monotonic() < deadline:
        queued, in_progress = queue_counts(cy, chain_id)
        left = queued + in_progress
        now = time.monotonic()
        if first is None and left < backlog:
            first = (now, left, targets.cpu_seconds(roots))
        if left == 0 and first is not None:
            done_in_window = first[1]
            window = now - first[0]
            cpu = targets.cpu_used(first[2], targets.cpu_seconds(roots))
            return {
                "server_start_to_empty_s": round(now - started, 2),
                "window_s": round(window, 2),
                "done_in_window": done_in_window,
                "rate": _rate(done_in_window, window),
                "cpu_s": cpu,
                "cpu_ms_per_request": {
                    k: round(v * 1e3 / done_in_window, 3) for k, v in cpu.items()
                }
                if done_in_window
                else {},
            }
        time.sleep(POLL_SECONDS)
    raise RuntimeError(
        f"the backlog did not drain within {timeout} s: {queue_counts(cy, chain_id)}"
    )


def completions(db_file: pathlib.Path) -> dict[str, Any]:
    """The rows' own record of the drain: statuses, and the first and last completion."""
    uri = f"file:{db_file}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM async_requests GROUP BY status"))
        first, last, count = conn.execute(
            "SELECT min(status_at), max(status_at), count(*) FROM async_requests "
            "WHERE status = 'SUCCEEDED'"
        ).fetchone()
    result: dict[str, Any] = {"statuses": statuses, "succeeded": count}
    if count and count > 1:
        span = (dt.datetime.fromisoformat(last) - dt.datetime.fromisoformat(first)).total_seconds()
        result.update(
            first_completion=first,
            last_completion=last,
            first_to_last_s=round(span, 3),
            rate=_rate(count - 1, span),
        )
    return result


def runner_turns(log: pathlib.Path) -> dict[str, Any]:
    """What the drain server's runner says of itself when it stops (its last log line of the
    kind): store turns made and the seconds they took, i.e. how busy its one pump was. Empty
    when the line is not there (another log format)."""
    found = re.findall(r"async runner stopped: (\{.*\})", log.read_text(errors="replace"))
    if not found:
        return {}
    with contextlib.suppress(ValueError, SyntaxError):
        snapshot = ast.literal_eval(found[-1])
        if isinstance(snapshot, dict) and snapshot.get("turns"):
            turns, seconds = snapshot["turns"], snapshot.get("turn_seconds", 0.0)
            return {
                "turns": turns,
                "turn_seconds": seconds,
                "ms_per_turn": round(seconds * 1e3 / turns, 3),
            }
    return {}


def cpu_per_request(runs: list[dict[str, Any]]) -> dict[str, float]:
    """CPU milliseconds per answered request of the sync runs, by process: the median."""
    per_run = [
        {k: v * 1e3 / run["requests"] for k, v in run["cpu_s"].items()}
        for run in runs
        if run.get("requests") and run.get("cpu_s")
    ]
    labels = dict.fromkeys(k for ms in per_run for k in ms)
    return {k: round(statistics.median([ms.get(k, 0.0) for ms in per_run]), 3) for k in labels}


def evaluate(results: dict[str, Any]) -> dict[str, Any]:
    p50 = results["enqueue"].get("p50_ms")
    sync_rps = results["sync"]["rps_median"]
    drain = results["drain"]["rows"].get("rate")
    ratio = round(drain / sync_rps, 3) if drain and sync_rps else None
    return {
        "enqueue_p50_ms": {
            "value": p50,
            "goal": f"<= {GOAL_ENQUEUE_P50_MS}",
            "met": p50 is not None and p50 <= GOAL_ENQUEUE_P50_MS,
        },
        "drain_vs_sync": {
            "value": ratio,
            "goal": f">= {GOAL_DRAIN_RATIO}",
            "met": ratio is not None and ratio >= GOAL_DRAIN_RATIO,
        },
    }


def table(results: dict[str, Any]) -> str:
    e, live = results["enqueue"], results.get("enqueue_live", {})
    sync, drain, goals = results["sync"], results["drain"], results["goals"]
    lines = [
        f"enqueue (runner off), {e['n']} at 1 connection: p50 {e.get('p50_ms')} ms, "
        f"p99 {e.get('p99_ms')} ms, mean {e.get('mean_ms')} ms",
    ]
    if live.get("n"):
        lines.append(
            f"enqueue (runner on), {live['n']}: p50 {live['p50_ms']} ms, p99 {live['p99_ms']} ms"
        )
    lines += [
        f"backlog: {results['backlog']} requests ({results['fill']['rate']} enqueues/s filling)",
        f"sync run_remote at {results['params']['cap']} connections: median "
        f"{sync['rps_median']} rps (before {sync['rps_before']}, after {sync['rps_after']})",
        f"drain: {drain['rows'].get('rate')} requests/s over "
        f"{drain['rows'].get('first_to_last_s')} s (polled: {drain['polled']['rate']}/s); "
        f"statuses {drain['rows']['statuses']}",
        f"CPU ms per request, drain: {drain['polled']['cpu_ms_per_request']}",
        f"runner's store turns over the drain server's life: {drain['runner']}",
        f"CPU ms per request, sync:  {sync['cpu_ms_per_request']}",
    ]
    for name, goal in goals.items():
        verdict = "met" if goal["met"] else "NOT met"
        lines.append(f"goal {name}: {goal['value']} (goal {goal['goal']}): {verdict}")
    return "\n".join(lines)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=10_000, help="requests drained")
    parser.add_argument("--enqueue", type=int, default=2_000, help="timed enqueues, runner off")
    parser.add_argument("--live-enqueue", type=int, default=300, help="timed enqueues, runner on")
    parser.add_argument("--fill-clients", type=int, default=8)
    parser.add_argument("--cap", type=int, default=16, help="async cap = sync connections")
    parser.add_argument("--sync-seconds", type=int, default=5)
    parser.add_argument("--sync-rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before each sync")
    parser.add_argument(
        "--workers", type=int, default=None, help="serve --workers (default: its own)"
    )
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "bench" / "results")
    parser.add_argument("--quick", action="store_true", help="a small run (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.backlog, args.enqueue, args.live_enqueue = 300, 100, 20
        args.sync_seconds, args.sync_rounds, args.warmup = 1, 1, 1
    if args.enqueue + 1 > args.backlog:
        parser.error("--backlog must be larger than --enqueue")
    return args


def _server(work_dir: pathlib.Path, args: argparse.Namespace, runner: bool) -> Chainyard:
    extra = ["--rate-limit", "0"]
    if args.workers is not None:
        extra += ["--workers", str(args.workers)]
    env = {CAP_SETTING: str(args.cap)}
    if not runner:
        env[RUNNER_SWITCH] = "0"
    return Chainyard(work_dir, None, extra_args=extra, env=env)


def run(args: argparse.Namespace, work_dir: pathlib.Path, results: dict[str, Any]) -> None:
    body_file = work_dir / "body.json"
    body_file.write_text('{"n": 1}')
    script = work_dir / "sync.lua"
    script.write_text(wrk.lua_script(body_file, HEADERS))

    with _server(work_dir, args, runner=False) as cy:
        ids = cy.push(CHAIN, CHAIN_NAME)
        chain_id = ids["chain_id"]
        cy.autoscaling(chain_id, CHAINLET, {"min_replica": 1, "max_replica": 1})
        sync_url = cy.run_url(chain_id)
        async_url = f"{cy.url}/chains/{chain_id}/production/async_run_remote"
        answer = httpx.post(sync_url, json={"n": 7}, headers=HEADERS, timeout=60)
        if answer.status_code != 200 or answer.json() != 7:
            raise RuntimeError(f"the chain answered {answer.status_code}: {answer.text[:300]}")
        print("sync, before the drain", flush=True)
        before = sync_runs(cy, sync_url, script, args, "before")
        print(f"enqueue: {args.enqueue} one after another", flush=True)
        results["enqueue"] = percentiles(enqueue_timed(async_url, 0, args.enqueue))
        results["enqueue"]["runner"] = "off"
        rest = args.backlog - args.enqueue
        print(f"backlog: {rest} more from {args.fill_clients} clients", flush=True)
        results["fill"] = fill(async_url, args.enqueue, rest, args.fill_clients)
        queued, in_progress = queue_counts(cy, chain_id)
        if (queued, in_progress) != (args.backlog, 0):
            raise RuntimeError(f"expected {args.backlog} queued, found {queued} ({in_progress})")

    print("restarting with the runner on; draining", flush=True)
    with _server(work_dir, args, runner=True) as cy:
        polled = watch_drain(cy, chain_id, args.backlog, timeout=max(600.0, args.backlog / 5))
        rows = completions(work_dir / "data" / "chainyard.db")
        print(f"  drained: {rows.get('rate')} requests/s (rows), {polled['rate']}/s (polled)")
        print("sync, after the drain", flush=True)
        after = sync_runs(cy, cy.run_url(chain_id), script, args, "after")
        async_url = f"{cy.url}/chains/{chain_id}/production/async_run_remote"
        if args.live_enqueue:
            live = enqueue_timed(async_url, args.backlog, args.live_enqueue)
            results["enqueue_live"] = {**percentiles(live), "runner": "on"}
            watch_drain(cy, chain_id, args.live_enqueue, timeout=300)

    rps_before = [r["rps"] for r in before if "rps" in r]
    rps_after = [r["rps"] for r in after if "rps" in r]
    results["backlog"] = args.backlog
    results["sync"] = {
        "connections": args.cap,
        "rps_median": _median(rps_before + rps_after),
        "rps_before": _median(rps_before),
        "rps_after": _median(rps_after),
        "cpu_ms_per_request": cpu_per_request(before + after),
        "runs": before + after,
    }
    # Over the drain server's life: the drain, the sync runs and the live enqueues.
    pump = runner_turns(work_dir / "server.log")
    if pump and rows.get("succeeded"):
        pump["requests_per_turn"] = round(
            (rows["succeeded"] + args.live_enqueue) / pump["turns"], 2
        )
    results["drain"] = {"rows": rows, "polled": polled, "runner": pump}
    results["goals"] = evaluate(results)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk.wrk_binary()
    # A SIGTERM unwinds like Ctrl-C, so that the server this run started is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "commit": run_info.commit(),
        "machine": run_info.machine(),
        "load_average_before": list(os.getloadavg()),
        "cpu_probe_ms_before": run_info.cpu_probe_ms(),
        "params": {k: str(v) if k == "out" else v for k, v in vars(args).items()},
    }
    work_dir = pathlib.Path(tempfile.mkdtemp(prefix="chainyard-async-"))
    try:
        run(args, work_dir, results)
    except BaseException:
        log = work_dir / "server.log"
        if log.exists():
            print(f"server log (tail):\n{log.read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    results["cpu_probe_ms_after"] = run_info.cpu_probe_ms()
    name = "async" + ("-quick" if args.quick else "")
    run_info.finish(results, args.out / f"{name}.json", started, table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
