"""Autoscaling and promotion benchmark: chainyard on its local runtime against Ray Serve.

Three measurements, each on chainyard (a real `chainyard serve --runtime local`, chains pushed
with `chainyard push`) and on Ray Serve 2.60 (a local Ray started by this process, called over
HTTP through Serve's proxy), one system at a time:

1. **Scale-up step**: a chainlet whose calls take 200 ms and run one at a time, on one replica,
   idle for 6 s, then one client sending a request every 0.8 s (a quarter of a replica's
   capacity, so that nothing scales yet) for 8 s; then the step: 8 clients, each sending
   requests back to back. Measured from the step: until the first answer from a replica other
   than the one that served before it ("second replica serves"), and until the autoscaler wanted
   more than one replica ("decision": for chainyard `chainyard_replicas_desired` on `/metrics`,
   for Ray the replica count in `serve.status()`, both polled every 0.1 s). Each trial uses a
   fresh chain (a fresh Serve application), so no trial sees the traffic of the one before. Two
   settings per system: defaults, and tuned to react faster (the constants below say exactly
   what each is).
2. **Cold start from zero**: a no-op chainlet scaled to zero, then one request, timed end to end
   (and, for chainyard, the server's own `chainyard_cold_start_seconds`). Repeated; medians.
3. **Failed requests during an instance-type update under load**: 8 clients on the 200 ms
   chainlet; chainyard's `instance_types/update` (blue-green, and gradual: rolling deploy with a
   traffic ramp) against Ray Serve redeploying the same application with other
   `ray_actor_options`. Counts every answer that is not a 200 (and every connection error) from
   the start of the load until the new version has served alone for a few seconds.

Usage: python bench/autoscale.py [--quick] [--only chainyard|ray] [--out bench/results]
       python bench/autoscale.py sandbox [...]   (the replica sandbox's cost: bench/sandbox_cost.py)
See bench/README.md; results and their reading are in docs/bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import pathlib
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx
import run_info

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAINS = ROOT / "bench" / "chains"
SLEEPY = CHAINS / "sleepy.py"
NOOP = CHAINS / "noop.py"
API_KEY = "benchauto1.autoscale-benchmark-key-0123456789"
CLIENTS = 8
SLEEP_SECONDS = 0.2  # what bench/chains/sleepy.py sleeps, and the Ray deployment too
POLL_SECONDS = 0.1
# Before the step, one client sends a request every 0.8 s: a quarter of what one replica serves,
# so that neither side wants a second replica yet (chainyard's 70 % utilization target and the
# slower answers of a busy 2-core machine included).
PACE_BEFORE_STEP = 4 * SLEEP_SECONDS
# Idle time between deploying a trial's chain and its first request. chainyard's autoscaler
# starts sampling an idle chainlet on its next full pass (every 10 ticks of 0.5 s); until then a
# chainlet has no samples, and the first one with a request in flight would be the whole window's
# average. A chainlet that has been up for a while has zeros there, which is the state measured.
IDLE_BEFORE_LOAD = 6.0
DECISION_GOAL_S = 2.0
COLD_START_GOAL_S = 1.0

# What each side runs with. chainyard's "defaults" are Baseten's defaults (autoscaling_window
# 60 s, scale_down_delay 900 s, target_utilization_percentage 70) except the replica bounds and
# concurrency_target, which match Ray's config below; min_replica 1 as Ray's min_replicas.
CHAINYARD_DEFAULTS = {"min_replica": 1, "max_replica": CLIENTS, "concurrency_target": 1}
# The shortest window chainyard accepts; its burst rule then looks at the last second.
CHAINYARD_TUNED = {**CHAINYARD_DEFAULTS, "autoscaling_window": 10}
CHAINYARD_COLD = {
    "min_replica": 0,
    "max_replica": 1,
    "concurrency_target": 1,
    "autoscaling_window": 10,
    "scale_down_delay": 0,
}
RAY_DEFAULTS = {"min_replicas": 1, "max_replicas": CLIENTS, "target_ongoing_requests": 1}
# Close to chainyard's sampling (every 0.5 s) and with no delay before a scale-up, as chainyard.
RAY_TUNED = {
    **RAY_DEFAULTS,
    "upscale_delay_s": 0,
    "metrics_interval_s": 0.5,
    "look_back_period_s": 1,
}
# Only how fast the deployment gets to zero; waking from zero skips Serve's upscale delay.
RAY_COLD = {
    "min_replicas": 0,
    "initial_replicas": 1,
    "max_replicas": 1,
    "target_ongoing_requests": 1,
    "upscale_delay_s": 0,
    "downscale_delay_s": 0,
    "metrics_interval_s": 0.5,
    "look_back_period_s": 1,
}
# truss runs one call at a time per replica by default (predict_concurrency 1); Serve's default
# would let 5 sleep side by side in one replica, which is not the same chainlet.
RAY_MAX_ONGOING = 1
RAY_CPUS_BEFORE, RAY_CPUS_AFTER = 0.5, 0.25
GRADUAL = {"rolling_deploy": True, "ramp_up_while_promoting": True, "ramp_up_duration_seconds": 5}


# --- load -----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Sample:
    start: float  # seconds after the load started
    end: float
    status: int  # 0: no HTTP answer (connection error, timeout)
    replica: Any  # the process id in the answer
    version: Any  # chainyard: the host's process id (one per deployment); Ray: the replica's CPUs
    error: str | None = None


class Load:
    """`clients` loops in a thread of their own (one asyncio loop), each sending one request after
    another; answers are kept as samples, timed from the start of the load.

    With `pace_before_step` (seconds from one request's start to the next), only the first client
    runs, at that pace, until `step()`; then every client sends back to back.
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        clients: int = CLIENTS,
        pace_before_step: float | None = None,
    ) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.clients = clients
        self.pace = pace_before_step
        self.samples: list[Sample] = []
        self.t0 = 0.0
        self.step_at = 0.0  # seconds after t0
        self._halt = threading.Event()
        self._started = threading.Event()
        self._step_seen = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stepped: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> float:
        self._thread.start()
        self._started.wait(30)
        return self.t0

    def step(self) -> float:
        """Lets every client loose; returns when that happened, in seconds after t0."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._set_step)
        self._step_seen.wait(30)
        return self.step_at

    def _set_step(self) -> None:
        assert self._stepped is not None
        if not self._stepped.is_set():
            self.step_at = self.now()
            self._stepped.set()
        self._step_seen.set()

    def stop(self) -> list[Sample]:
        self._halt.set()
        if self._loop is not None:
            # Clients still waiting for the step must see the halt too.
            self._loop.call_soon_threadsafe(self._set_step)
        self._thread.join(180)
        return list(self.samples)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def wait(self, predicate: Callable[[list[Sample]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(list(self.samples)):
                return True
            time.sleep(0.05)
        return False

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stepped = asyncio.Event()
        limits = httpx.Limits(max_connections=self.clients, max_keepalive_connections=self.clients)
        # Longer than chainyard holds a request for a waking replica (120 s).
        async with httpx.AsyncClient(headers=self.headers, timeout=150, limits=limits) as client:
            self.t0 = time.monotonic()
            if self.pace is None:
                self._stepped.set()
            self._started.set()
            await asyncio.gather(*(self._client(client, i) for i in range(self.clients)))

    async def _client(self, client: httpx.AsyncClient, i: int) -> None:
        assert self._stepped is not None
        n = 0
        if self.pace is not None and i > 0:
            await self._stepped.wait()
        while self.pace is not None and not self._stepped.is_set() and not self._halt.is_set():
            n += 1
            began = time.monotonic()
            await self._send(client, i * 100_000 + n)
            rest = max(0.0, self.pace - (time.monotonic() - began))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stepped.wait(), rest)
        while not self._halt.is_set():
            n += 1
            await self._send(client, i * 100_000 + n)

    async def _send(self, client: httpx.AsyncClient, n: int) -> None:
        start = self.now()
        try:
            response = await client.post(self.url, json={"n": n})
        except httpx.HTTPError as exc:
            self.samples.append(Sample(start, self.now(), 0, None, None, repr(exc)[:200]))
            return
        end = self.now()
        if response.status_code != 200:
            error = response.text[:200]
            self.samples.append(Sample(start, end, response.status_code, None, None, error))
            return
        body = response.json()
        version = body.get("host", body.get("version"))
        self.samples.append(Sample(start, end, 200, body.get("pid"), version))


class Poller:
    """Calls `probe` every POLL_SECONDS in a thread and keeps what it saw: replica counts,
    `desired` (what the autoscaler wants) and `ready` (what can serve)."""

    def __init__(self, probe: Callable[[], dict[str, float]]) -> None:
        self.probe = probe
        self.values: list[tuple[float, dict[str, float]]] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._halt.is_set():
            with contextlib.suppress(Exception):  # a missed poll is a gap, not a failure
                self.values.append((time.monotonic(), self.probe()))
            self._halt.wait(POLL_SECONDS)

    def first_at_least(self, key: str, threshold: float, t0: float) -> float | None:
        for at, value in self.values:
            if at >= t0 and value.get(key, 0) >= threshold:
                return round(at - t0, 3)
        return None


def distinct_replicas(samples: list[Sample]) -> int:
    return len({s.replica for s in samples if s.status == 200})


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def step_result(
    samples: list[Sample], step_at: float, poller: Poller, step_abs: float
) -> dict[str, Any]:
    """What one scale-up step measured; times are seconds after the step."""
    before = {s.replica for s in samples if s.status == 200 and s.start < step_at}
    after = sorted(
        (s for s in samples if s.status == 200 and s.start >= step_at), key=lambda s: s.end
    )
    seen: dict[Any, float] = {}
    for s in after:
        seen.setdefault(s.replica, s.end - step_at)
    others = sorted(t for replica, t in seen.items() if replica not in before)
    latencies = [s.end - s.start for s in after]
    wanted_before = [v["desired"] for at, v in poller.values if at < step_abs]
    return {
        # Both are 1 for a clean step: one replica served, and one was wanted, before it.
        "replicas_before_step": len(before),
        "desired_before_step": wanted_before[-1] if wanted_before else None,
        "decision_s": poller.first_at_least("desired", 2, step_abs),
        "second_replica_ready_s": poller.first_at_least("ready", 2, step_abs),
        "second_replica_serves_s": _round(others[0]) if others else None,
        "all_replicas_serve_s": _round(others[CLIENTS - 2]) if len(others) >= CLIENTS - 1 else None,
        "replicas_served": len(seen),
        "requests_after_step": len(after),
        "failed": sum(1 for s in samples if s.status != 200),
        "latency_p50_s": _round(_percentile(latencies, 50)),
        "latency_max_s": _round(max(latencies, default=None)),
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def run_step(load: Load, poller: Poller, pre_step: float, timeout: float) -> dict[str, Any]:
    """After IDLE_BEFORE_LOAD, one client at a quarter of a replica's capacity for `pre_step`
    seconds, then all 8 back to back, until each has its own replica, or 10 s after a second
    replica served, or `timeout`."""
    time.sleep(IDLE_BEFORE_LOAD)
    load.start()
    time.sleep(pre_step)
    step_at = load.step()

    def enough(samples: list[Sample]) -> bool:
        after = [s for s in samples if s.status == 200 and s.start >= step_at]
        if distinct_replicas(after) >= CLIENTS:
            return True
        first = {s.replica for s in samples if s.status == 200 and s.start < step_at}
        new = [s.end for s in after if s.replica not in first]
        return bool(new) and load.now() > min(new) + 10

    load.wait(enough, timeout)
    samples = load.stop()
    return step_result(samples, step_at, poller, load.t0 + step_at)


def summarize(trials: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float | None:
        values = [t[key] for t in trials if t.get(key) is not None]
        return _round(statistics.median(values)) if values else None

    keys = (
        "decision_s",
        "second_replica_ready_s",
        "second_replica_serves_s",
        "all_replicas_serve_s",
    )
    return {
        **{f"median_{k}": median(k) for k in keys},
        # None when a trial saw no decision before it ended (see each trial's decision_s).
        "max_decision_s": None
        if any(t["decision_s"] is None for t in trials)
        else max((t["decision_s"] for t in trials), default=None),
        "failed": sum(t["failed"] for t in trials),
        "trials": trials,
    }


def under_load_result(
    samples: list[Sample], update_at: float, events: dict[str, float | None]
) -> dict[str, Any]:
    """Failures over the whole load, and when the new version took over (times after the
    update was sent)."""
    answered = [s for s in samples if s.status == 200]
    old = {s.version for s in answered if s.end <= update_at}
    new = [s for s in answered if s.version not in old]
    old_after = [s for s in answered if s.version in old and s.end > update_at]
    failures = [s for s in samples if s.status != 200]
    latencies = [s.end - s.start for s in answered if s.start >= update_at]
    return {
        "requests": len(samples),
        "failed": len(failures),
        "failed_examples": sorted({f"{f.status}: {f.error}" for f in failures})[:5],
        "first_new_version_answer_s": _round(min(s.end for s in new) - update_at) if new else None,
        "last_old_version_answer_s": _round(
            max((s.end for s in old_after), default=update_at) - update_at
        ),
        **{k: _round(v - update_at) if v is not None else None for k, v in events.items()},
        "latency_p50_s_after_update": _round(_percentile(latencies, 50)),
        "latency_p99_s_after_update": _round(_percentile(latencies, 99)),
        "latency_max_s_after_update": _round(max(latencies, default=None)),
    }


# --- chainyard ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Chainyard:
    """A real `chainyard serve --runtime local` on a free port, with a temporary data dir;
    `sandbox` is its `--sandbox` (None: the server's default, auto); `extra_args` go to
    `chainyard serve` as they are."""

    def __init__(
        self,
        work_dir: pathlib.Path,
        reconcile_interval: float | None,
        sandbox: str | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.env = dict(env or {})
        self.sandbox = sandbox
        self.extra_args = list(extra_args)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work_dir / "server.log"
        self.reconcile_interval = reconcile_interval
        self.process: subprocess.Popen[bytes] | None = None
        self.api = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
        )

    def __enter__(self) -> Chainyard:
        command = [sys.executable, "-m", "chainyard.cli.main", "serve", "--runtime", "local"]
        command += ["--port", str(self.port), "--data-dir", str(self.work_dir / "data")]
        if self.reconcile_interval is not None:
            command += ["--reconcile-interval", str(self.reconcile_interval)]
        if self.sandbox is not None:
            command += ["--sandbox", self.sandbox]
        command += self.extra_args
        env = {**os.environ, **self.env, "CHAINYARD_BOOTSTRAP_API_KEY": API_KEY}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"chainyard did not start:\n{self.log.read_text()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        self.api.close()
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def push(self, chain_file: pathlib.Path, name: str, wait: bool = True) -> dict[str, str]:
        """`chainyard push --promote`; with `wait`, returns once promoted (the CLI polls every
        0.5 s), else once the server has accepted the deployment."""
        env = {**os.environ, "CHAINYARD_URL": self.url, "CHAINYARD_API_KEY": API_KEY}
        command = [sys.executable, "-m", "chainyard.cli.main", "push", str(chain_file)]
        result = subprocess.run(
            [*command, "--name", name, "--promote", *(["--wait"] if wait else [])],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        if result.returncode != 0:
            raise RuntimeError(f"chainyard push failed:\n{result.stderr[-3000:]}")
        ids: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
        return ids

    def run_url(self, chain_id: str) -> str:
        return f"{self.url}/chains/{chain_id}/production/run_remote"

    def chainlet(self, chain_id: str, deployment_id: str) -> dict[str, Any]:
        response = self.api.get(f"/v1/chains/{chain_id}/deployments/{deployment_id}")
        response.raise_for_status()
        chainlet: dict[str, Any] = response.json()["chainlets"][0]
        return chainlet

    def autoscaling(self, chain_id: str, chainlet: str, settings: dict[str, int]) -> None:
        response = self.api.patch(
            f"/v1/chains/{chain_id}/environments/production/chainlet_settings/autoscaling_settings",
            json={"updates": [{"chainlet_name": chainlet, "autoscaling_settings": settings}]},
        )
        response.raise_for_status()

    def metrics(self) -> str:
        response = self.api.get("/metrics")
        response.raise_for_status()
        return response.text

    def call(self, chain_id: str) -> dict[str, Any]:
        response = self.api.post(self.run_url(chain_id), json={"n": 0}, timeout=150)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def delete(self, chain_id: str) -> None:
        # Frees the trial's replicas before the next trial starts; the reconciler stops them.
        self.api.delete(f"/v1/chains/{chain_id}").raise_for_status()


def metric(text: str, name: str, chainlet_id: str) -> float | None:
    pattern = rf'^{re.escape(name)}\{{[^}}]*chainlet_id="{re.escape(chainlet_id)}"[^}}]*\}} (\S+)$'
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else None


def decisions(text: str) -> dict[str, float]:
    found = re.findall(
        r'^chainyard_autoscaler_decisions_total\{reason="([^"]+)"\} (\S+)$', text, re.MULTILINE
    )
    return {reason: float(value) for reason, value in found}


def _wait_gone(cy: Chainyard, chainlet_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not metric(cy.metrics(), "chainyard_replicas_ready", chainlet_id):
            return
        time.sleep(0.2)


def chainyard_step(
    cy: Chainyard, profile: str, settings: dict[str, int], trial: int, pre_step: float
) -> dict[str, Any]:
    ids = cy.push(SLEEPY, f"step-{profile}-{trial}")
    chain_id = ids["chain_id"]
    chainlet = cy.chainlet(chain_id, ids["chain_deployment_id"])
    cy.autoscaling(chain_id, chainlet["name"], settings)
    before = decisions(cy.metrics())

    def counts() -> dict[str, float]:
        text = cy.metrics()
        return {
            "desired": metric(text, "chainyard_replicas_desired", chainlet["id"]) or 0,
            "ready": metric(text, "chainyard_replicas_ready", chainlet["id"]) or 0,
        }

    load = Load(cy.run_url(chain_id), dict(cy.api.headers), pace_before_step=PACE_BEFORE_STEP)
    with Poller(counts) as poller:
        result = run_step(load, poller, pre_step, timeout=120)
    after = decisions(cy.metrics())
    result["autoscaler_decisions"] = {
        k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)
    }
    cy.delete(chain_id)
    _wait_gone(cy, chainlet["id"])
    print(f"  chainyard {profile} trial {trial}: {_brief(result)}", flush=True)
    return result


def chainyard_cold_start(cy: Chainyard, repeats: int) -> dict[str, Any]:
    ids = cy.push(NOOP, "cold-start")
    chain_id, deployment_id = ids["chain_id"], ids["chain_deployment_id"]
    chainlet = cy.chainlet(chain_id, deployment_id)
    cy.autoscaling(chain_id, chainlet["name"], CHAINYARD_COLD)
    runs = []
    for _ in range(repeats):
        to_zero = wait_scaled_to_zero(cy, chain_id, deployment_id)
        runs.append(
            {
                **cold_start_once(cy, chain_id, chainlet["id"]),
                "scaled_to_zero_after_idle_s": to_zero,
            }
        )
        print(f"  chainyard cold start: {runs[-1]}", flush=True)
    cy.delete(chain_id)
    return _cold_summary(runs)


def wait_scaled_to_zero(cy: Chainyard, chain_id: str, deployment_id: str) -> float:
    """Seconds until the chainlet of `chain_id`'s no-op deployment is SCALED_TO_ZERO."""
    idle_since = time.monotonic()
    while cy.chainlet(chain_id, deployment_id)["status"] != "SCALED_TO_ZERO":
        if time.monotonic() > idle_since + 120:
            raise RuntimeError("the no-op chainlet did not scale to zero in 120 s")
        time.sleep(0.2)
    return round(time.monotonic() - idle_since, 1)


def cold_start_once(cy: Chainyard, chain_id: str, chainlet_id: str) -> dict[str, Any]:
    """One request to a chainlet at zero, timed end to end, and the server's own
    `chainyard_cold_start_seconds` for it."""
    name = "chainyard_cold_start_seconds"
    text = cy.metrics()
    sum_before = metric(text, f"{name}_sum", chainlet_id) or 0.0
    count_before = metric(text, f"{name}_count", chainlet_id) or 0.0
    started = time.monotonic()
    cy.call(chain_id)
    e2e = time.monotonic() - started
    text = cy.metrics()
    count = (metric(text, f"{name}_count", chainlet_id) or 0.0) - count_before
    server = (metric(text, f"{name}_sum", chainlet_id) or 0.0) - sum_before
    return {
        "end_to_end_s": round(e2e, 3),
        "server_cold_start_s": round(server / count, 3) if count else None,
    }


def _cold_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def median(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return _round(statistics.median(values)) if values else None

    return {
        "median_end_to_end_s": median("end_to_end_s"),
        "median_server_cold_start_s": median("server_cold_start_s"),
        "runs": runs,
    }


def chainyard_update(cy: Chainyard, mode: str) -> dict[str, Any]:
    ids = cy.push(SLEEPY, f"update-{mode}")
    chain_id, old_id = ids["chain_id"], ids["chain_deployment_id"]
    chainlet = cy.chainlet(chain_id, old_id)
    cy.autoscaling(chain_id, chainlet["name"], CHAINYARD_TUNED)
    if mode == "gradual":
        cy.api.patch(
            f"/v1/chains/{chain_id}/environments/production", json={"promotion_settings": GRADUAL}
        ).raise_for_status()
    load = Load(cy.run_url(chain_id), dict(cy.api.headers))
    load.start()
    try:
        # Promote what 8 clients have scaled up to, not a single idle replica.
        load.wait(lambda s: distinct_replicas(s) >= CLIENTS, 30)
        replicas_before = distinct_replicas(load.samples)
        update_at = load.now()
        response = cy.api.post(
            f"/v1/chains/{chain_id}/environments/production/chainlet_settings/instance_types/update",
            json={"updates": [{"chainlet_name": chainlet["name"], "instance_type_id": "2x8"}]},
        )
        response.raise_for_status()
        new_id = response.json()["chain_deployment"]["id"]
        switched = drained = None
        deadline = time.monotonic() + 240
        while drained is None and time.monotonic() < deadline:
            if switched is None:
                env = cy.api.get(f"/v1/chains/{chain_id}/environments/production").json()
                if (env.get("current_deployment") or {}).get("id") == new_id:
                    switched = load.now()
            else:
                old = cy.api.get(f"/v1/chains/{chain_id}/deployments/{old_id}").json()
                if old["status"] == "SCALED_TO_ZERO":
                    drained = load.now()
            time.sleep(POLL_SECONDS)
        if drained is None:
            raise RuntimeError(f"the {mode} promotion did not finish in 240 s")
        # The new deployment serves alone for a while: late failures would show here.
        time.sleep(3)
    finally:
        samples = load.stop()
    result = under_load_result(
        samples, update_at, {"switched_s": switched, "old_deployment_drained_s": drained}
    )
    result["replicas_before_update"] = replicas_before
    cy.delete(chain_id)
    print(f"  chainyard update ({mode}): {_brief(result)}", flush=True)
    return result


def run_chainyard(args: argparse.Namespace) -> dict[str, Any]:
    work_dir = pathlib.Path(tempfile.mkdtemp(prefix="chainyard-autoscale-"))
    result: dict[str, Any] = {
        "settings": {
            "defaults": CHAINYARD_DEFAULTS,
            "tuned": CHAINYARD_TUNED,
            "cold_start": CHAINYARD_COLD,
            "gradual_promotion": GRADUAL,
            "reconcile_interval_s": args.reconcile_interval or 1.0,
            "autoscale_interval_s": 0.5,
        }
    }
    try:
        with Chainyard(work_dir, args.reconcile_interval) as cy:
            print(f"chainyard serving on {cy.url} (data in {work_dir})", flush=True)
            for profile, settings in (("defaults", CHAINYARD_DEFAULTS), ("tuned", CHAINYARD_TUNED)):
                trials = [
                    chainyard_step(cy, profile, settings, i, args.pre_step)
                    for i in range(args.trials)
                ]
                result[f"step_{profile}"] = summarize(trials)
            result["cold_start"] = chainyard_cold_start(cy, args.cold_repeats)
            result["update_blue_green"] = chainyard_update(cy, "blue-green")
            result["update_gradual"] = chainyard_update(cy, "gradual")
    except BaseException:
        log = work_dir / "server.log"
        if log.exists():
            print(f"chainyard server log (tail):\n{log.read_text()[-4000:]}", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return result


# --- Ray Serve ------------------------------------------------------------------------------------


def ray_deployments() -> tuple[Any, Any]:
    """The Ray Serve equivalents of bench/chains/sleepy.py and noop.py. Defined in a function so
    that Ray ships them to its workers by value (this file is not importable there)."""
    from ray import serve

    @serve.deployment(max_ongoing_requests=RAY_MAX_ONGOING)
    class Sleepy:
        async def __call__(self, request: Any) -> dict[str, Any]:
            import ray

            body = await request.json()
            await asyncio.sleep(SLEEP_SECONDS)
            # The CPUs the replica was given tell the versions apart in a redeploy.
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
            return {"n": body["n"], "pid": os.getpid(), "version": cpus}

    @serve.deployment(max_ongoing_requests=RAY_MAX_ONGOING)
    class Noop:
        async def __call__(self, request: Any) -> dict[str, Any]:
            body = await request.json()
            return {"n": body["n"], "pid": os.getpid()}

    return Sleepy, Noop


class RayServe:
    def __init__(self, port: int) -> None:
        from ray import serve

        self.serve = serve
        self.port = port
        self.sleepy, self.noop = ray_deployments()

    def url(self, app: str) -> str:
        return f"http://127.0.0.1:{self.port}/{app}"

    def deploy(self, deployment: Any, app: str, autoscaling: dict[str, Any], cpus: float) -> None:
        bound = deployment.options(
            autoscaling_config=autoscaling, ray_actor_options={"num_cpus": cpus}
        ).bind()
        self.serve.run(bound, name=app, route_prefix=f"/{app}")

    def replicas(self, app: str) -> dict[str, float]:
        """Replicas in any state (Serve creates them when it decides), and running ones."""
        status = self.serve.status().applications.get(app)
        states = [d.replica_states for d in status.deployments.values()] if status else []
        return {
            "desired": sum(sum(s.values()) for s in states),
            "ready": sum(n for s in states for state, n in s.items() if state == "RUNNING"),
        }

    def call(self, app: str) -> dict[str, Any]:
        response = httpx.post(self.url(app), json={"n": 0}, timeout=150)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


@contextlib.contextmanager
def ray_serve(num_cpus: int) -> Iterator[RayServe]:
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray
    from ray import serve

    # A short path: Ray's Unix sockets live under it.
    temp_dir = tempfile.mkdtemp(prefix="cy-ray-", dir="/tmp")
    started = time.monotonic()
    try:
        # Logical CPUs, not cores: as chainyard oversubscribes, Ray must fit 8 + 8 replicas in a
        # redeploy on this 2-core machine.
        ray.init(
            # A cluster of its own, never one found through RAY_ADDRESS or a running `ray start`.
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=temp_dir,
            object_store_memory=256 * 1024 * 1024,
            logging_level="WARNING",
        )
        # Serve's INFO lines ("application is ready", ...) would bury the benchmark's own output.
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        port = _free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        print(
            f"Ray Serve up in {time.monotonic() - started:.1f}s, proxy on port {port}", flush=True
        )
        yield RayServe(port)
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def ray_step(
    rs: RayServe, profile: str, config: dict[str, Any], trial: int, pre_step: float
) -> dict[str, Any]:
    app = f"step-{profile}-{trial}"
    rs.deploy(rs.sleepy, app, config, RAY_CPUS_BEFORE)
    load = Load(rs.url(app), pace_before_step=PACE_BEFORE_STEP)
    with Poller(lambda: rs.replicas(app)) as poller:
        result = run_step(load, poller, pre_step, timeout=120)
    rs.serve.delete(app)
    print(f"  Ray Serve {profile} trial {trial}: {_brief(result)}", flush=True)
    return result


def ray_cold_start(rs: RayServe, repeats: int) -> dict[str, Any]:
    app = "cold-start"
    rs.deploy(rs.noop, app, RAY_COLD, RAY_CPUS_BEFORE)
    rs.call(app)
    runs = []
    for _ in range(repeats):
        idle_since = time.monotonic()
        deadline = idle_since + 120
        while rs.replicas(app)["desired"] > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the no-op deployment did not scale to zero in 120 s")
            time.sleep(0.2)
        to_zero = time.monotonic() - idle_since
        started = time.monotonic()
        rs.call(app)
        runs.append(
            {
                "end_to_end_s": round(time.monotonic() - started, 3),
                "scaled_to_zero_after_idle_s": round(to_zero, 1),
            }
        )
        print(f"  Ray Serve cold start: {runs[-1]}", flush=True)
    rs.serve.delete(app)
    return _cold_summary(runs)


def ray_redeploy(rs: RayServe) -> dict[str, Any]:
    app = "update"
    rs.deploy(rs.sleepy, app, RAY_TUNED, RAY_CPUS_BEFORE)
    load = Load(rs.url(app))
    load.start()
    try:
        load.wait(lambda s: distinct_replicas(s) >= CLIENTS, 30)
        replicas_before = distinct_replicas(load.samples)
        update_at = load.now()
        # serve.run returns once the application is RUNNING again, on the new version.
        rs.deploy(rs.sleepy, app, RAY_TUNED, RAY_CPUS_AFTER)
        running = load.now()
        load.wait(
            lambda s: (
                any(x.version == RAY_CPUS_AFTER for x in s)
                and all(x.version == RAY_CPUS_AFTER for x in s if x.start > load.now() - 1)
            ),
            120,
        )
        time.sleep(3)
    finally:
        samples = load.stop()
    result = under_load_result(samples, update_at, {"serve_run_returned_s": running})
    result["replicas_before_update"] = replicas_before
    rs.serve.delete(app)
    print(f"  Ray Serve redeploy: {_brief(result)}", flush=True)
    return result


def run_ray(args: argparse.Namespace) -> dict[str, Any]:
    from ray.serve.config import AutoscalingConfig

    def resolved(config: dict[str, Any]) -> dict[str, Any]:
        full = AutoscalingConfig(**config).model_dump()
        return {k: v for k, v in full.items() if k != "policy"}

    import ray

    result: dict[str, Any] = {
        "ray_version": ray.__version__,
        "settings": {
            "defaults": resolved(RAY_DEFAULTS),
            "tuned": resolved(RAY_TUNED),
            "cold_start": resolved(RAY_COLD),
            "max_ongoing_requests": RAY_MAX_ONGOING,
            "num_cpus_before_after_redeploy": [RAY_CPUS_BEFORE, RAY_CPUS_AFTER],
            "ray_init_num_cpus": args.ray_cpus,
        },
    }
    with ray_serve(args.ray_cpus) as rs:
        for profile, config in (("defaults", RAY_DEFAULTS), ("tuned", RAY_TUNED)):
            trials = [ray_step(rs, profile, config, i, args.pre_step) for i in range(args.trials)]
            result[f"step_{profile}"] = summarize(trials)
        result["cold_start"] = ray_cold_start(rs, args.cold_repeats)
        result["update_redeploy"] = ray_redeploy(rs)
    return result


# --- reporting ------------------------------------------------------------------------------------


def _brief(result: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v}" for k, v in result.items() if not isinstance(v, list | dict) and v is not None
    )


def _fmt(value: Any, unit: str = " s") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "never"
    return f"{value:.2f}{unit}" if isinstance(value, float) else f"{value}"


def table(results: dict[str, Any]) -> str:
    cy, ray = results.get("chainyard", {}), results.get("ray_serve", {})
    columns = [
        ("chainyard defaults", cy.get("step_defaults")),
        ("chainyard tuned", cy.get("step_tuned")),
        ("Ray defaults", ray.get("step_defaults")),
        ("Ray tuned", ray.get("step_tuned")),
    ]
    lines = [
        "scale-up step, 1 -> 8 clients (medians over trials)",
        f"{'':<34}" + "".join(f"{name:>20}" for name, _ in columns),
    ]
    for key, label in (
        ("median_decision_s", "decision (desired > 1)"),
        ("max_decision_s", f"worst decision (goal <= {DECISION_GOAL_S:.0f} s)"),
        ("median_second_replica_ready_s", "second replica ready"),
        ("median_second_replica_serves_s", "second replica serves"),
        ("median_all_replicas_serve_s", "all 8 replicas serve"),
        ("failed", "failed requests"),
    ):
        lines.append(
            f"{label:<34}" + "".join(f"{_fmt(c.get(key) if c else None):>20}" for _, c in columns)
        )
    lines.append("")
    lines.append(f"cold start from zero (median), goal <= {COLD_START_GOAL_S:.0f} s")
    for name, data in (("chainyard", cy), ("Ray Serve", ray)):
        cold = data.get("cold_start")
        if cold:
            server = cold.get("median_server_cold_start_s")
            extra = f" (server-side {_fmt(server)})" if server is not None else ""
            lines.append(f"  {name:<12} end to end {_fmt(cold['median_end_to_end_s'])}{extra}")
    lines.append("")
    lines.append("failed requests during an update under 8 clients (goal: 0)")
    for name, data in (
        ("chainyard blue-green", cy.get("update_blue_green")),
        ("chainyard gradual", cy.get("update_gradual")),
        ("Ray Serve redeploy", ray.get("update_redeploy")),
    ):
        if data:
            lines.append(
                f"  {name:<22} {data['failed']} of {data['requests']}; new version answers from "
                f"{_fmt(data['first_new_version_answer_s'])}, old one until "
                f"{_fmt(data['last_old_version_answer_s'])}; p99 after the update "
                f"{_fmt(data['latency_p99_s_after_update'])}"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("chainyard", "ray"), help="run one side only")
    parser.add_argument("--trials", type=int, default=3, help="scale-up steps per setting")
    parser.add_argument(
        "--pre-step",
        type=float,
        default=8.0,
        help="seconds of one paced client before the step (more than chainyard's default burst "
        "window of 6 s)",
    )
    parser.add_argument("--cold-repeats", type=int, default=5, help="cold starts per system")
    parser.add_argument(
        "--reconcile-interval",
        type=float,
        default=None,
        help="chainyard serve's --reconcile-interval (default: the server's own, 1 s)",
    )
    parser.add_argument(
        "--ray-cpus", type=int, default=16, help="logical CPUs given to ray.init (default 16)"
    )
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "bench" / "results")
    parser.add_argument("--quick", action="store_true", help="1 trial per setting, 2 cold starts")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.cold_repeats = 1, 2
    return args


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["sandbox"]:
        # What the replica sandbox costs (cold start, push to ACTIVE): its own module, which
        # builds on this one's servers and cold starts.
        import sandbox_cost

        return sandbox_cost.main(given[1:])
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "commit": run_info.commit(),
        "machine": run_info.machine(),
        "load_average_before": list(os.getloadavg()),
        "params": {k: str(v) if k == "out" else v for k, v in vars(args).items()},
    }
    if args.only in (None, "chainyard"):
        print("== chainyard ==", flush=True)
        results["chainyard"] = run_chainyard(args)
        results["load_average_after_chainyard"] = list(os.getloadavg())
    if args.only in (None, "ray"):
        print("== Ray Serve ==", flush=True)
        results["ray_serve"] = run_ray(args)
        results["load_average_after_ray"] = list(os.getloadavg())
    name = "autoscale" + ("-quick" if args.quick else "") + (f"-{args.only}" if args.only else "")
    run_info.finish(results, args.out / f"{name}.json", started, table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
